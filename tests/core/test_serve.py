"""`python -m core serve`: a real server process, a real HTTP client, and the bad-input catalogue."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from tests.conftest import ROOT, free_port
from tests.model_folders import make_model_folder

pytestmark = pytest.mark.timeout(300)


def start_server(folder, *extra: str) -> tuple[str, subprocess.Popen]:
    """`python -m core serve` on a free port, once /health answers."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "core", "serve", "--model", str(folder), "--port", str(port), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if json.loads(r.read())["status"] == "ok":
                    break
        except OSError:
            time.sleep(0.3)
    return url, proc


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = make_model_folder(tmp_path_factory.mktemp("serve") / "model")
    url, proc = start_server(folder, "--max-documents", "50")
    yield {"url": url, "proc": proc, "folder": folder}
    proc.terminate()
    proc.wait(timeout=10)


def post(url: str, body: bytes | dict, path: str = "/v1/rerank", key: str | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    req = urllib.request.Request(url + path, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_rerank_shape_and_scores(server):
    from core.scoring.reranker import Reranker

    docs = [
        "Statins lower LDL cholesterol.",
        {"text": "Rivers flood in spring."},
        "HMG-CoA reductase inhibitors.",
    ]
    status, out = post(
        server["url"], {"query": "statins", "documents": docs, "top_n": 2, "return_documents": True}
    )
    assert status == 200 and out["model"] == "model" and out["usage"]["documents"] == 3
    assert [set(r) for r in out["results"]] == [{"index", "relevance_score", "raw_score", "document"}] * 2
    want = Reranker.load(server["folder"]).score(
        "statins", [d if isinstance(d, str) else d["text"] for d in docs]
    )
    best = sorted(range(3), key=lambda i: -want[i])[:2]
    assert [r["index"] for r in out["results"]] == best
    assert abs(out["results"][0]["raw_score"] - float(want[best[0]])) < 1e-5
    # a plain sigmoid run without calibration: its score is already in [0, 1] and is the relevance
    assert abs(out["results"][0]["relevance_score"] - float(want[best[0]])) < 1e-5
    assert out["results"][0]["document"]["text"] in (
        "Statins lower LDL cholesterol.",
        "Rivers flood in spring.",
        "HMG-CoA reductase inhibitors.",
    )
    status, out = post(server["url"], {"query": "q", "documents": ["a", "b"]})
    assert status == 200 and len(out["results"]) == 2 and "document" not in out["results"][0]


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"{not json", 400, "not valid UTF-8 JSON"),
        (b"\xff\xfe", 400, "not valid UTF-8 JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        ({"documents": ["a"]}, 422, "'query' must be a non-empty string"),
        ({"query": "  ", "documents": ["a"]}, 422, "'query' must be a non-empty string"),
        ({"query": 5, "documents": ["a"]}, 422, "'query' must be a non-empty string"),
        ({"query": "q", "documents": "a"}, 422, "'documents' must be a list"),
        ({"query": "q", "documents": []}, 422, "'documents' is empty"),
        ({"query": "q", "documents": ["a", 3]}, 422, r"documents\[1\] must be a string"),
        ({"query": "q", "documents": [{"txt": "a"}]}, 422, r"documents\[0\] must be a string"),
        ({"query": "q", "documents": ["a"] * 51}, 413, "at most 50 per request"),
        ({"query": "q", "documents": ["a"], "top_n": 0}, 422, "'top_n' must be a positive integer"),
        ({"query": "q", "documents": ["a"], "top_n": "2"}, 422, "'top_n' must be a positive integer"),
        (
            {"query": "q", "documents": ["a"], "return_documents": "yes"},
            422,
            "'return_documents' must be true or false",
        ),
        (b"x" * (1 << 20 + 1), 413, "The body is 2097152 bytes; at most 1048576"),
    ],
)
def test_bad_input_gets_a_clear_4xx_and_the_server_lives(server, body, status, message):
    import re

    got, out = post(server["url"], body)
    assert got == status and re.search(message, out["error"]["message"]), out
    with urllib.request.urlopen(server["url"] + "/health", timeout=5) as r:
        assert r.status == 200
    assert server["proc"].poll() is None


def test_unknown_routes_and_loopback(server):
    got, out = post(server["url"], {"query": "q", "documents": ["a"]}, path="/v1/embed")
    assert got == 404 and "POST /v1/rerank" in out["error"]["message"]
    import argparse

    from core.export import serve

    p = argparse.ArgumentParser()
    serve.cli_arguments(p)
    assert p.parse_args(["--model", "x"]).host == "127.0.0.1"


def test_concurrent_clients_get_their_own_scores_and_metrics_count_them(server):
    from concurrent.futures import ThreadPoolExecutor

    from core.scoring.reranker import Reranker

    reranker = Reranker.load(server["folder"])
    bodies = [
        {"query": f"statins {i}", "documents": [f"passage {j} about {i}" for j in range(5)]} for i in range(8)
    ]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda b: post(server["url"], b), bodies))
    for body, (status, out) in zip(bodies, answers):
        want = reranker.score(body["query"], body["documents"])
        got = {r["index"]: r["raw_score"] for r in out["results"]}
        assert status == 200 and np.allclose([got[i] for i in range(5)], want, atol=1e-5)
    with urllib.request.urlopen(server["url"] + "/metrics", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    served = int(re.search(r'rerank_requests_total\{route="/v1/rerank",status="200"\} (\d+)', text).group(1))
    batches = int(re.search(r"rerank_batch_requests_count (\d+)", text).group(1))
    assert served >= 8 and 1 <= batches <= served
    assert re.search(r'rerank_request_seconds_bucket\{le="\+Inf"\} \d+', text)
    assert re.search(r"rerank_errors_total [1-9]", text)  # the bad-input catalogue above counted as errors


@pytest.fixture(scope="module")
def keyed_bundle(tmp_path_factory):
    """A bundle-shaped folder whose spec carries cleaning rules and a calibration, served with an API key."""
    import shutil

    from core.export import bundle

    folder = make_model_folder(tmp_path_factory.mktemp("bundle") / "b")
    spec = {
        "format": "rerank-studio-spec/1",
        "kind": "cross-encoder",
        "cross_encoder": ".",
        "max_length": 32,
        "activation": "sigmoid",
        "cleaning": ["control", "html", "urls", "symbols", "whitespace"],
        "calibration": {"method": "platt", "a": 6.0, "b": -3.0},
    }
    (folder / "rerank_spec.json").write_text(json.dumps(spec))
    shutil.copyfile(bundle.LOADER_SOURCE, folder / bundle.LOADER_FILE)
    shutil.copyfile(bundle.CLEANING_SOURCE, folder / bundle.CLEANING_FILE)
    url, proc = start_server(folder, "--api-key", "s3cret")
    yield {"url": url, "proc": proc, "folder": folder}
    proc.terminate()
    proc.wait(timeout=10)


HTML = "<p>Statins   lower <b>LDL</b> cholesterol &amp; more: https://example.org/a?b=1 \u2728</p>"


def test_html_is_scored_as_the_cleaned_text_and_relevance_is_calibrated(keyed_bundle):
    from core.ingest.cleaning import CleaningOptions, clean_text
    from core.scoring.reranker import Reranker

    cleaned = clean_text(HTML, CleaningOptions())[0]
    assert cleaned != HTML and "<b>" not in cleaned
    status, out = post(keyed_bundle["url"], {"query": "statins", "documents": [HTML, cleaned]}, key="s3cret")
    assert status == 200
    raw = {r["index"]: r["raw_score"] for r in out["results"]}
    rel = {r["index"]: r["relevance_score"] for r in out["results"]}
    want = float(Reranker.load(keyed_bundle["folder"]).score("statins", [cleaned])[0])
    assert abs(raw[0] - raw[1]) < 1e-6 and abs(raw[0] - want) < 1e-5
    assert abs(rel[0] - 1 / (1 + np.exp(-(6.0 * want - 3.0)))) < 1e-6 and 0 <= rel[0] <= 1
    # the standalone loader cleans and calibrates the same way
    sys.path.insert(0, str(keyed_bundle["folder"]))
    try:
        import rerank_studio_bundle

        shipped = rerank_studio_bundle.load(keyed_bundle["folder"])
        assert abs(float(shipped.score("statins", [HTML])[0]) - want) < 1e-5
        assert abs(float(shipped.relevance("statins", [HTML])[0]) - rel[0]) < 1e-6
        assert shipped.rank("statins", [HTML])[0]["relevance_score"] == pytest.approx(rel[0], abs=1e-6)
        unclean = rerank_studio_bundle.load(keyed_bundle["folder"], clean=False)
        raw_html = float(Reranker.load(keyed_bundle["folder"]).score("statins", [HTML])[0])
        assert abs(float(unclean.score("statins", [HTML])[0]) - raw_html) < 1e-5
    finally:
        sys.path.remove(str(keyed_bundle["folder"]))
    with urllib.request.urlopen(keyed_bundle["url"] + "/health", timeout=5) as r:
        health = json.loads(r.read())
    assert health["cleaning"] and health["relevance_score"].startswith("platt calibration")


def test_api_key_is_required_when_set(keyed_bundle):
    body = {"query": "q", "documents": ["a"]}
    assert post(keyed_bundle["url"], body)[0] == 401
    status, out = post(keyed_bundle["url"], body, key="wrong")
    assert status == 401 and "API key" in out["error"]["message"]
    assert post(keyed_bundle["url"], body, key="s3cret")[0] == 200
    req = urllib.request.Request(keyed_bundle["url"] + "/v1/rerank", data=json.dumps(body).encode())
    req.add_header("X-API-Key", "s3cret")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(keyed_bundle["url"] + "/metrics", timeout=5)
    assert err.value.code == 401


def test_refuses_a_non_loopback_bind_without_a_key(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("RERANK_API_KEY", None)
    out = subprocess.run(
        [sys.executable, "-m", "core", "serve", "--model", str(tmp_path), "--host", "0.0.0.0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "API key is required" in out.stderr and "--api-key" in out.stderr
    from core.export.serve import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("example.org")


def test_served_model_cleaning_switch_and_uncalibrated_relevance():
    from core.export.protocol import ServedModel

    class Stub:
        kind = "residual"
        spec = {"kind": "residual", "cleaning": ["html", "whitespace"], "max_length": 32}

    on, off = ServedModel.of(Stub(), "m"), ServedModel.of(Stub(), "m", clean=False)
    assert on.inputs({"query": "<b>q</b>", "documents": ["<i>d</i>"]}) == ("q", ["d"])
    assert off.inputs({"query": "<b>q</b>", "documents": ["<i>d</i>"]}) == ("<b>q</b>", ["<i>d</i>"])
    rel = on.relevance(np.array([-30.0, 0.0, 40.0]))  # a residual score is unbounded: squashed into [0, 1]
    assert rel[0] < 1e-6 and rel[1] == 0.5 and rel[2] > 1 - 1e-6


def test_the_ready_line_comes_once_the_socket_listens(server):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "core", "serve", "--model", str(server["folder"]), "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        ready = json.loads(proc.stdout.readline())
        assert ready["serving"] == f"http://127.0.0.1:{port}" and ready["api_key"] is False
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:  # not refused
            assert r.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
