"""Fast inference: ONNX Runtime embeddings and cross-encoder logits equal torch's, int8 ranks alike, exports cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core import models
from core.inference import device, onnx_export, policy
from core.inference.onnx_backend import OnnxCrossEncoder, OnnxEmbedder

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def texts(scifact) -> dict[str, list[str]]:
    """Real SciFact claims and abstracts of varied lengths (some longer than 256 tokens: truncation)."""
    docs = sorted(scifact["corpus"].values(), key=len)
    picked = docs[:: max(1, len(docs) // 24)][:24] + [docs[-1]]
    queries = list(scifact["queries"].values())[:6]
    return {"docs": picked, "queries": queries}


@pytest.fixture(scope="module")
def cross_dir(tmp_path_factory):
    """The bundled encoder with a seeded one-logit head, saved: torch and ONNX load the same weights."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("cross-encoder")
    models.load_cross_encoder(None, max_length=256, device="cpu").save_pretrained(str(folder))
    return folder


def _torch_embed(texts: list[str]) -> np.ndarray:
    return models.load_embedder(None).encode(
        texts, batch_size=8, normalize_embeddings=True, convert_to_numpy=True
    )


def test_onnx_embeddings_equal_torch(texts, onnx_cache):
    all_texts = texts["docs"] + texts["queries"]
    fast = OnnxEmbedder(models.resolve(None), cache=onnx_cache, batch_size=8)(all_texts)
    ref = _torch_embed(all_texts)
    assert fast.shape == ref.shape
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert float(np.min(np.sum(fast * ref, axis=1))) >= 1 - 1e-4


def test_onnx_cross_encoder_logits_equal_torch(texts, cross_dir, onnx_cache):
    pairs = [(q, d) for q in texts["queries"][:3] for d in texts["docs"][::3]]
    ce = models.load_cross_encoder(str(cross_dir), max_length=256, device="cpu")
    ref = np.asarray(ce.predict(pairs, activation_fn=torch.nn.Identity(), convert_to_numpy=True)).reshape(-1)
    fast = OnnxCrossEncoder(cross_dir, 256, cache=onnx_cache, batch_size=8)(pairs)
    assert fast.shape == ref.shape
    assert float(np.max(np.abs(fast - ref))) <= 1e-3


def test_int8_ranking_agrees_with_torch(texts, onnx_cache):
    """Dynamic int8 changes the numbers a little; the rankings must stay nearly the same."""
    docs, queries = texts["docs"], texts["queries"]
    int8 = OnnxEmbedder(models.resolve(None), quantize=True, cache=onnx_cache, batch_size=8)
    ref_d, ref_q = _torch_embed(docs), _torch_embed(queries)
    q8_d, q8_q = int8(docs), int8(queries)
    assert float(np.min(np.sum(q8_d * ref_d, axis=1))) >= 0.98
    top1, overlap5 = [], []
    for i in range(len(queries)):
        a, b = np.argsort(-(ref_d @ ref_q[i])), np.argsort(-(q8_d @ q8_q[i]))
        top1.append(a[0] == b[0])
        overlap5.append(len(set(a[:5]) & set(b[:5])) / 5)
    # measured on these 25 abstracts x 6 claims: top-1 agrees for every claim, top-5 overlap >= 0.8
    assert np.mean(top1) >= 5 / 6
    assert np.mean(overlap5) >= 0.8


def test_second_load_reuses_the_export(texts, onnx_cache, tmp_path, monkeypatch):
    path = models.resolve(None)
    first = onnx_export.ensure_export(path, "embed", cache=onnx_cache)
    stamp = first.stat().st_mtime_ns

    def no_export(*_args, **_kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_export, "_build", no_export)
    again = OnnxEmbedder(path, cache=onnx_cache)
    assert again.path == first and first.stat().st_mtime_ns == stamp
    # another workspace in the same process gets a copy of the built file, not a new export
    other = onnx_export.ensure_export(path, "embed", cache=tmp_path / "other-cache")
    assert other != first and other.read_bytes() == first.read_bytes()


def test_export_key_follows_the_options(cross_dir):
    keys = {onnx_export.export_key(cross_dir, kind, q) for kind in ("embed", "cross") for q in (False, True)}
    assert len(keys) == 4


def test_a_bare_encoder_is_no_cross_encoder_for_onnx():
    with pytest.raises(onnx_export.OnnxUnsupported):
        onnx_export.check_supported(__import__("pathlib").Path(models.resolve(None)), "cross")


def test_embed_texts_uses_the_fast_path_when_on(texts, workspace, monkeypatch):
    from core import embeddings

    monkeypatch.setenv(policy.FAST_ENV, "on")
    monkeypatch.setenv(policy.PRECISION_ENV, "fp32")
    calls = []
    real = embeddings._encoder
    monkeypatch.setattr(embeddings, "_encoder", lambda *a: calls.append(a[1]) or real(*a))
    got = embeddings.embed_texts(texts["queries"])
    assert calls == [True]
    assert float(np.min(np.sum(got * _torch_embed(texts["queries"]), axis=1))) >= 1 - 1e-4
    monkeypatch.setenv(policy.FAST_ENV, "off")
    assert policy.fast_enabled("embed") is False
    embeddings.embed_texts(texts["queries"][:2] + ["a text never embedded before"])
    assert calls == [True, False]


def test_int8_vectors_get_their_own_cache(monkeypatch):
    from core import embeddings

    monkeypatch.setenv(policy.PRECISION_ENV, "int8")
    assert embeddings._cache_key(None, True) != embeddings._cache_key(None, False)
    monkeypatch.setenv(policy.PRECISION_ENV, "fp32")
    assert embeddings._cache_key(None, True) == embeddings._cache_key(None, False)


def test_auto_follows_the_measured_verdict(monkeypatch):
    monkeypatch.setenv(policy.FAST_ENV, "auto")
    monkeypatch.setenv(policy.PRECISION_ENV, "int8")
    monkeypatch.setattr(device, "pick_device", lambda prefer=None: "cpu")
    for kind in ("embed", "cross"):
        assert policy.fast_enabled(kind) is policy.met_goal(kind)
    monkeypatch.setitem(policy.MEASURED, "embed", {"speedup": 1.5, "ndcg10_delta": 0.0})
    assert policy.fast_enabled("embed") is False
    monkeypatch.setitem(policy.MEASURED, "embed", {"speedup": 3.0, "ndcg10_delta": 0.0})
    assert policy.fast_enabled("embed") is True
    monkeypatch.setattr(device, "pick_device", lambda prefer=None: "cuda")
    assert policy.fast_enabled("embed") is False  # on a GPU, torch on the GPU is the fast path


def test_device_choice_on_this_machine(monkeypatch):
    monkeypatch.delenv(device.DEVICE_ENV, raising=False)
    if not torch.cuda.is_available():
        assert device.pick_device() in ("cpu", "mps")
        assert device.mixed_precision("cpu") is None
    monkeypatch.setenv(device.DEVICE_ENV, "cpu")
    assert device.pick_device() == "cpu"
    assert device.fit_batch_size("cpu", seq_len=256) == 32


def test_fit_batch_size_shrinks_with_length_and_memory(monkeypatch):
    monkeypatch.setattr(device, "free_memory", lambda _d: 16 * 2**30)
    short = device.fit_batch_size("cuda", seq_len=128)
    long = device.fit_batch_size("cuda", seq_len=512)
    assert short >= long >= 1 and short & (short - 1) == 0 and long & (long - 1) == 0
    monkeypatch.setattr(device, "free_memory", lambda _d: 2**30)
    assert device.fit_batch_size("cuda", seq_len=512, params=335_000_000, hidden=1024, layers=24) < long


@gpu
@pytest.mark.gpu
def test_embedding_on_cuda_matches_cpu(texts):
    from sentence_transformers import SentenceTransformer

    dev = device.pick_device()
    assert dev.startswith("cuda")
    model = SentenceTransformer(models.resolve(None), device=dev)
    batch = device.fit_batch_size(dev, seq_len=256, training=False)
    got = model.encode(texts["docs"], batch_size=batch, normalize_embeddings=True, convert_to_numpy=True)
    assert float(np.min(np.sum(got * _torch_embed(texts["docs"]), axis=1))) >= 1 - 1e-3


@gpu
@pytest.mark.gpu
def test_short_training_on_cuda_with_mixed_precision(texts, tmp_path):
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    dev = device.pick_device()
    precision = device.mixed_precision(dev)
    assert precision in ("bf16", "fp16")
    model = models.load_cross_encoder(None, max_length=256, device=dev)
    q, docs = texts["queries"], texts["docs"]
    data = Dataset.from_dict(
        {
            "query": [q[i % len(q)] for i in range(24)],
            "passage": docs[:24],
            "label": [float(i % 2) for i in range(24)],
        }
    )
    args = CrossEncoderTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=4,
        per_device_train_batch_size=device.fit_batch_size(dev, seq_len=256),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        report_to=[],
        save_strategy="no",
        logging_steps=1,
    )
    trainer = CrossEncoderTrainer(
        model=model, args=args, train_dataset=data, loss=BinaryCrossEntropyLoss(model)
    )
    result = trainer.train()
    assert np.isfinite(result.training_loss)
    assert next(model.model.parameters()).device.type == "cuda"
