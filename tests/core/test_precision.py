"""CPU precision: bf16 only where the chip has bf16 units (or when asked), said in words; fp32 stays today's path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core import estimates
from core.inference import precision, torch_precision
from core.inference.precision import PRECISION_ENV, Precision, bf16_units, choose, cpu_flags
from core.scoring.reranker import Reranker, length_order
from core.training import budget, device_args
from core.training.config import TrainConfig
from tests.model_folders import MAX_LENGTH, make_model_folder

pytestmark = pytest.mark.timeout(300)

QUERY = "Do statins lower cholesterol?"
PASSAGES = [
    "Statins reduce LDL cholesterol in most patients, and the effect is larger at higher doses of the drug.",
    "The river flooded the valley.",
    "Cholesterol synthesis is inhibited by HMG-CoA reductase inhibitors.",
]


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f amx_bf16 amx_tile\n\nprocessor\t: 1\n")
    assert {"amx_bf16", "avx512f"} <= cpu_flags(info)
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_bf16_units_need_the_instructions_and_onednn():
    assert bf16_units(frozenset({"amx_bf16", "avx512_bf16"}), onednn_bf16=True) == "AMX"
    assert bf16_units(frozenset({"avx512_bf16"}), onednn_bf16=True) == "avx512_bf16"
    assert bf16_units(frozenset({"avx512f", "avx512_vnni"}), onednn_bf16=True) is None
    assert bf16_units(frozenset({"amx_bf16"}), onednn_bf16=False) is None


def test_choice_says_why_and_the_override_wins(monkeypatch):
    monkeypatch.setenv(PRECISION_ENV, "auto")
    assert choose(units="AMX") == Precision("bf16", "bf16 on AMX")
    assert choose(units=None) == Precision("fp32", "fp32: this CPU has no bf16 units")
    assert choose("fp32", units="AMX").name == "fp32"
    assert choose("bf16", units=None).bf16  # asked for: emulated, said so
    assert "emulated" in choose("bf16", units=None).reason
    assert choose(units="AMX", device="cuda").name == "fp32"  # a GPU picks its own mixed precision
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    assert choose(units="AMX").name == "fp32"
    monkeypatch.setenv(PRECISION_ENV, "fast")
    with pytest.raises(ValueError, match="auto, bf16, fp32"):
        choose()


def test_this_machine_is_detected_once(monkeypatch):
    monkeypatch.setenv(PRECISION_ENV, "auto")
    found = precision._detected()
    has_units = bool({"amx_bf16", "avx512_bf16"} & cpu_flags())
    assert (found is not None) == (has_units and torch.backends.mkldnn.is_available())
    assert choose().bf16 == (found is not None)


def test_training_arguments_follow_the_run_precision(monkeypatch):
    monkeypatch.setattr(precision, "_detected", lambda: "AMX")
    monkeypatch.setenv(PRECISION_ENV, "auto")
    hw = device_args.hardware_arguments(TrainConfig(precision="auto"), None, device="cpu")
    assert hw["bf16"] is True and hw["fp16"] is False
    assert device_args.describe(hw, "cpu") == "Training on cpu in bf16 (on AMX)."
    assert "precision_reason" not in device_args.trainer_arguments(hw)
    hw = device_args.hardware_arguments(TrainConfig(precision="fp32"), None, device="cpu")
    assert device_args.describe(hw, "cpu") == "Training on cpu in fp32 (set by the precision setting)."
    monkeypatch.setattr(precision, "_detected", lambda: None)
    hw = device_args.hardware_arguments(TrainConfig(), None, device="cpu")
    assert device_args.describe(hw, "cpu") == "Training on cpu in fp32 (this CPU has no bf16 units)."
    assert device_args.trainer_arguments(hw) == {"use_cpu": True, "bf16": False, "fp16": False}


def test_bf16_cpu_training_turns_attention_dropout_off_when_asked_and_fp32_keeps_it():
    from core import models

    def dropouts(model):
        return sorted({m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)})

    model = models.load_cross_encoder(None, max_length=MAX_LENGTH)
    assert dropouts(model) == [0.1]
    fp32 = {"use_cpu": True, "bf16": False, "fp16": False, "precision_reason": "fp32: test"}
    assert device_args.fused_attention(model, fp32) == 0 and dropouts(model) == [0.1]
    bf16 = {"use_cpu": True, "bf16": True, "fp16": False, "precision_reason": "bf16 on AMX"}
    assert device_args.fused_attention(model, dict(bf16), keep_dropout=True) == 0 and dropouts(model) == [0.1]
    layers = model.model.config.num_hidden_layers
    assert device_args.fused_attention(model, bf16) == layers
    assert dropouts(model) == [0.0, 0.1]  # hidden-state dropout stays
    assert all(layer.attention.self.dropout.p == 0.0 for layer in model.model.bert.encoder.layer)
    assert device_args.describe(bf16, "cpu").endswith(
        "attention dropout off so the fused bf16 attention kernel runs."
    )
    assert device_args.trainer_arguments(bf16) == {"use_cpu": True, "bf16": True, "fp16": False}


def test_bf16_copy_leaves_the_fp32_model_alone():
    layer = torch.nn.Linear(4, 2)
    fast = torch_precision.in_precision(layer, Precision("bf16", "test"), copy_first=True)
    assert fast.weight.dtype == torch.bfloat16 and layer.weight.dtype == torch.float32
    assert torch_precision.in_precision(layer, Precision("fp32", "test")) is layer


def test_length_order_scores_longest_first_and_restores_the_order():
    class Recorder:
        def __init__(self):
            self.calls = []

        def predict(self, pairs, **_):
            self.calls.append([len(q) + len(p) for q, p in pairs])
            return np.array([float(len(q) + len(p)) for q, p in pairs])

    groups = [("q", ["a" * 5, "a" * 50]), ("qq", ["a" * 20, "a", "a" * 40])]
    r = Reranker({"kind": "cross-encoder"}, Recorder())
    out = r.cross_encoder_scores(groups, chunk=2)
    assert [list(x) for x in out] == [[6.0, 51.0], [22.0, 3.0, 42.0]]  # each pair's own score, in place
    assert r.cross_encoder.calls == [[51, 42], [22, 6], [3]]  # the longest pairs share the first chunk
    assert list(length_order([("ab", "c"), ("abcd", "e"), ("x", "y")])) == [1, 0, 2]


def test_bf16_reranker_ranks_like_fp32(tmp_path, monkeypatch):
    folder = make_model_folder(tmp_path / "plain", activation="identity")
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    fp32 = Reranker.load(folder)
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    bf16 = Reranker.load(folder)
    assert next(bf16.cross_encoder.parameters()).dtype == torch.bfloat16
    assert next(fp32.cross_encoder.parameters()).dtype == torch.float32
    assert fp32.batch_size == 32 and bf16.batch_size == 16384 // MAX_LENGTH  # AMX gains with the batch
    head = [m for m in bf16.cross_encoder.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert head.weight.dtype == torch.float32  # the logit itself in fp32: no bf16 steps, no false ties
    a, b = fp32.score(QUERY, PASSAGES), bf16.score(QUERY, PASSAGES)
    assert b.dtype == np.float64 and np.allclose(a, b, atol=0.05)
    assert MAX_LENGTH == fp32.spec["max_length"]


def test_bf16_vectors_get_their_own_cache(monkeypatch):
    from core import embeddings

    monkeypatch.setattr(embeddings, "_torch_device", lambda: "cpu")
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    plain = embeddings._cache_key(None, False)
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    assert embeddings._cache_key(None, False) == f"{plain}|torch-bf16"


def test_rates_are_kept_per_precision(tmp_path):
    base = estimates.DEFAULTS["train_pairs_per_s"]
    assert estimates.rate(tmp_path, "train_pairs_per_s", "fp32") == (base, False)
    factor = estimates.BF16_SPEEDUP["train_pairs_per_s"]
    assert estimates.rate(tmp_path, "train_pairs_per_s", "bf16") == (pytest.approx(base * factor), False)
    assert estimates.observe(tmp_path, "train_pairs_per_s", 10.0, "run:a")
    assert estimates.rate(tmp_path, "train_pairs_per_s", "bf16") == (pytest.approx(10.0 * factor), True)
    assert estimates.observe(tmp_path, estimates.rate_key("train_pairs_per_s", "bf16"), 25.0, "run:b")
    assert estimates.rate(tmp_path, "train_pairs_per_s", "bf16") == (25.0, True)
    assert estimates.rate(tmp_path, "train_pairs_per_s", "fp32") == (10.0, True)
    stored = json.loads((tmp_path / estimates.FILE).read_text())
    assert stored["train_pairs_per_s.bf16"] == [25.0]
    assert "in bf16, measured here" in estimates.training_rate_words(tmp_path, "bf16")


def test_the_budget_plans_with_the_precision_rate(tmp_path):
    cfg = TrainConfig(batch_size=16, epochs=1.0, max_length=128)
    assert estimates.observe(tmp_path, estimates.rate_key("train_pairs_per_s", "bf16"), 30.0, "run:bf16")
    fp32 = budget.estimate(cfg, 320, tmp_path, 1, available=64 * 2**30, precision="fp32")
    bf16 = budget.estimate(cfg, 320, tmp_path, 1, available=64 * 2**30, precision="bf16")
    assert bf16.total_seconds < fp32.total_seconds and bf16.steps == fp32.steps
    assert bf16.text().endswith("(measured rate, bf16)") and bf16.to_dict()["precision"] == "bf16"
    assert fp32.text().endswith("(default rate)")


def test_bf16_embedder_pools_in_fp32_and_keeps_the_vectors():
    from core import models

    fp32 = models.load_embedder(None, device="cpu")
    fast = torch_precision.in_precision(fp32, Precision("bf16", "test"), copy_first=True)
    assert next(fast.parameters()).dtype == torch.bfloat16
    assert next(fp32.parameters()).dtype == torch.float32  # the process's shared embedder is untouched
    a = fp32.encode([QUERY] + PASSAGES, normalize_embeddings=True)
    b = fast.encode([QUERY] + PASSAGES, normalize_embeddings=True)
    assert b.dtype == np.float32
    assert float(np.min(np.sum(a * b, axis=1))) >= 0.9995  # bf16 pooling alone gave 0.998 on SciFact


def test_the_epochs_reason_says_the_rate_and_precision_it_planned_with(tmp_path, monkeypatch):
    from core.training import defaults

    monkeypatch.setattr(defaults, "rows_per_epoch", lambda cfg, shape: (1000, 8))
    assert estimates.observe(tmp_path, estimates.rate_key("train_pairs_per_s", "bf16"), 30.0, "run:bf16")

    def plan(precision):
        cfg = TrainConfig(epochs=3.0, max_length=128, precision=precision)
        return cfg, defaults.fit_time_budget(cfg, None, 600.0, tmp_path)

    fast, fast_notes = plan("bf16")
    slow, slow_notes = plan("fp32")
    assert fast_notes[-1].endswith("at 30.0 pairs/s (length 128) in bf16, measured here")
    assert slow_notes[-1].endswith("at 9.0 pairs/s (length 128) in fp32, default")
    assert fast.epochs == pytest.approx(2.2) and slow.epochs == pytest.approx(
        0.6
    )  # 600 s x rate / 8,000 pairs
    monkeypatch.setattr(precision, "_detected", lambda: None)
    monkeypatch.setenv(PRECISION_ENV, "auto")
    assert plan("auto")[1][-1].endswith("in fp32, default")  # auto: what this CPU would train in
