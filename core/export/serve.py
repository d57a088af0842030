"""`python -m core serve --model DIR`: POST /v1/rerank (Cohere/Jina/vLLM shape) and GET /health, stdlib only.

Request: {"query": str, "documents": [str | {"text": str}], "top_n"?: int, "return_documents"?: bool, "model"?: str}
Response: {"model": name, "results": [{"index", "relevance_score", "document"?: {"text"}}], "usage": {...}}
Errors: 4xx with {"error": {"type", "message"}}; the server never dies on a bad request.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from core.errors import UserError

MAX_BODY = 1 << 20  # 1 MiB
MAX_DOCUMENTS = 1000
MAX_TEXT = 100_000  # characters per document or query


class RequestError(UserError):
    """A request the server refuses, with the HTTP status and a message that says what was expected."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request") -> None:
        super().__init__(message)
        self.status, self.kind = status, kind


def parse_request(body: bytes, max_documents: int = MAX_DOCUMENTS) -> dict[str, Any]:
    """Validate a /v1/rerank body; RequestError(4xx) says exactly what is wrong."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(400, f"The body is not valid UTF-8 JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise RequestError(400, f"The body must be a JSON object, got {type(data).__name__}.")
    query = data.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RequestError(422, "'query' must be a non-empty string.")
    docs = data.get("documents")
    if not isinstance(docs, list):
        raise RequestError(
            422,
            f"'documents' must be a list of strings or {{\"text\": ...}} objects, got {type(docs).__name__}.",
        )
    if not docs:
        raise RequestError(422, "'documents' is empty: give at least one document to rank.")
    if len(docs) > max_documents:
        raise RequestError(
            413, f"{len(docs)} documents: at most {max_documents} per request.", "too_many_documents"
        )
    texts = []
    for i, d in enumerate(docs):
        text = d.get("text") if isinstance(d, dict) else d
        if not isinstance(text, str):
            raise RequestError(
                422,
                f"documents[{i}] must be a string or an object with a string 'text', got {type(d).__name__}.",
            )
        if len(text) > MAX_TEXT or len(query) > MAX_TEXT:
            raise RequestError(413, f"documents[{i}] or the query is longer than {MAX_TEXT} characters.")
        texts.append(text)
    top_n = data.get("top_n", len(texts))
    if top_n is None:
        top_n = len(texts)
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise RequestError(422, f"'top_n' must be a positive integer, got {top_n!r}.")
    ret = data.get("return_documents", False)
    if not isinstance(ret, bool):
        raise RequestError(422, f"'return_documents' must be true or false, got {ret!r}.")
    return {"query": query, "documents": texts, "top_n": min(top_n, len(texts)), "return_documents": ret}


def rerank_response(reranker: Any, request: dict[str, Any], model_name: str) -> dict[str, Any]:
    """The ranked results for a validated request (scores are the run's evaluated score)."""
    scores = reranker.score(request["query"], request["documents"])
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))[: request["top_n"]]
    results = []
    for i in order:
        item: dict[str, Any] = {"index": i, "relevance_score": float(scores[i])}
        if request["return_documents"]:
            item["document"] = {"text": request["documents"][i]}
        results.append(item)
    return {"model": model_name, "results": results, "usage": {"documents": len(request["documents"])}}


class RerankServer(ThreadingHTTPServer):
    """Holds the loaded Reranker; one scoring call at a time (torch already uses every core)."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], reranker: Any, model_name: str, max_documents: int = MAX_DOCUMENTS
    ) -> None:
        super().__init__(address, RerankHandler)
        self.reranker, self.model_name, self.max_documents = reranker, model_name, max_documents
        self.lock = threading.Lock()


class RerankHandler(BaseHTTPRequestHandler):
    """GET /health, POST /v1/rerank (also /rerank and /v2/rerank); JSON in and out."""

    server: RerankServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: one stderr line per request would cost more than the request."""

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, kind: str = "invalid_request") -> None:
        self._send(status, {"error": {"type": kind, "message": message}})

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        """Health: the model is loaded and answering."""
        if self.path.split("?")[0] == "/health":
            self._send(
                200, {"status": "ok", "model": self.server.model_name, "kind": self.server.reranker.kind}
            )
        else:
            self._error(404, f"No route GET {self.path}; use GET /health or POST /v1/rerank.", "not_found")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        """Rerank; every failure answers with a JSON error instead of dropping the connection."""
        if self.path.split("?")[0] not in ("/v1/rerank", "/rerank", "/v2/rerank"):
            self._error(404, f"No route POST {self.path}; use POST /v1/rerank.", "not_found")
            return
        try:
            length = int(self.headers.get("Content-Length") or -1)
        except ValueError:
            length = -1
        if length < 0:
            self._error(411, "A Content-Length header is required.")
            return
        if length > MAX_BODY:
            self.close_connection = True
            if length <= 16 * MAX_BODY:  # drain, so the client reads the answer instead of a reset connection
                for _ in range(0, length, 1 << 16):
                    self.rfile.read(min(1 << 16, length))
                    length -= 1 << 16
            self._error(413, f"The body is {length} bytes; at most {MAX_BODY}.", "body_too_large")
            return
        try:
            request = parse_request(self.rfile.read(length), self.server.max_documents)
            with self.server.lock:
                payload = rerank_response(self.server.reranker, request, self.server.model_name)
        except RequestError as exc:
            self._error(exc.status, str(exc), exc.kind)
            return
        except Exception as exc:  # noqa: BLE001 - the server survives anything a request triggers
            self._error(500, f"Scoring failed: {type(exc).__name__}: {exc}", "server_error")
            return
        self._send(200, payload)


def cli_arguments(parser: Any) -> None:
    """Options of serve."""
    parser.add_argument("--model", required=True, help="an exported bundle or a run's model folder")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback by default)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--max-documents", type=int, default=MAX_DOCUMENTS)


def cli_main(args: Any) -> None:
    """Load the model, print one JSON line when ready, serve until interrupted."""
    from core.scoring.reranker import Reranker

    started = time.time()
    reranker = Reranker.load(args.model)
    name = Path(args.model).resolve().name
    server = RerankServer((args.host, args.port), reranker, name, args.max_documents)
    print(
        json.dumps(
            {
                "serving": f"http://{args.host}:{server.server_address[1]}",
                "model": name,
                "kind": reranker.kind,
                "load_s": round(time.time() - started, 2),
            }
        ),
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.stdout.flush()
