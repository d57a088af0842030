"""`python -m core serve`: a real server process, a real HTTP client, and the bad-input catalogue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT, free_port
from tests.model_folders import make_model_folder

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = make_model_folder(tmp_path_factory.mktemp("serve") / "model")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core",
            "serve",
            "--model",
            str(folder),
            "--port",
            str(port),
            "--max-documents",
            "50",
        ],
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
    yield {"url": url, "proc": proc, "folder": folder}
    proc.terminate()
    proc.wait(timeout=10)


def post(url: str, body: bytes | dict, path: str = "/v1/rerank") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(
        url + path, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
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
    assert [set(r) for r in out["results"]] == [{"index", "relevance_score", "document"}] * 2
    want = Reranker.load(server["folder"]).score(
        "statins", [d if isinstance(d, str) else d["text"] for d in docs]
    )
    best = sorted(range(3), key=lambda i: -want[i])[:2]
    assert [r["index"] for r in out["results"]] == best
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
        (b"x" * (1 << 20 + 1), 413, "at most 1048576"),
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
