"""The rerank server as an ASGI app (Starlette, run by uvicorn): routes, the API key, the body limit and metrics."""

from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from core.export.batcher import DEFAULT_BATCH_TOKENS, Batcher
from core.export.metrics import Metrics
from core.export.protocol import (
    MAX_BODY,
    MAX_DOCUMENTS,
    RequestError,
    ServedModel,
    parse_request,
    rerank_response,
)

RERANK_ROUTES = ("/v1/rerank", "/rerank", "/v2/rerank")
DRAIN_LIMIT = 16 * MAX_BODY  # a larger body is refused without reading it (the connection is closed)


def _error(status: int, message: str, kind: str = "invalid_request") -> tuple[int, dict[str, Any]]:
    return status, {"error": {"type": kind, "message": message}}


def _authorized(request: Request, api_key: str | None) -> bool:
    """No key configured, or the request carries it as a Bearer token or an X-API-Key header."""
    if not api_key:
        return True
    auth = request.headers.get("authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    return hmac.compare_digest(given.encode(), api_key.encode())


async def _body(request: Request) -> bytes:
    """The body within MAX_BODY; RequestError(411/413) otherwise, reporting the size the client sent."""
    try:
        length = int(request.headers.get("content-length") or -1)
    except ValueError:
        length = -1
    if length < 0:
        raise RequestError(411, "A Content-Length header is required.")
    if length > MAX_BODY:
        if (
            length <= DRAIN_LIMIT
        ):  # read it away, so the client reads the answer instead of a reset connection
            async for _ in request.stream():
                pass
        raise RequestError(413, f"The body is {length} bytes; at most {MAX_BODY}.", "body_too_large")
    return await request.body()


class RerankApp:
    """The handlers, holding the served model, the batcher and the metrics."""

    def __init__(self, model: ServedModel, api_key: str | None, max_documents: int, batcher: Batcher) -> None:
        self.model, self.api_key, self.max_documents, self.batcher = model, api_key, max_documents, batcher
        self.metrics = Metrics()

    async def rerank(self, request: Request) -> tuple[int, dict[str, Any]]:
        """Validate, queue for the model, answer; every failure is a JSON error, never a dropped connection."""
        if not _authorized(request, self.api_key):
            return _error(401, "Missing or wrong API key: send 'Authorization: Bearer KEY'.", "unauthorized")
        try:
            parsed = parse_request(await _body(request), self.max_documents)
            scores = await self.batcher.score(*self.model.inputs(parsed))
            return 200, rerank_response(self.model, parsed, scores)
        except RequestError as exc:
            return _error(exc.status, str(exc), exc.kind)
        except Exception as exc:  # noqa: BLE001 - the server survives anything a request triggers
            return _error(500, f"Scoring failed: {type(exc).__name__}: {exc}", "server_error")

    async def dispatch(self, request: Request) -> Response:
        """One entry for every path, so unknown routes get the same JSON errors as before."""
        started, path, method = time.perf_counter(), request.url.path, request.method
        headers = {}
        if method == "POST" and path in RERANK_ROUTES:
            status, payload = await self.rerank(request)
            route = "/v1/rerank"
            if status == 413:
                headers["Connection"] = "close"
        elif method == "GET" and path == "/health":
            status, payload, route = 200, {"status": "ok", **self.model.describe()}, path
        elif method == "GET" and path == "/metrics":
            self.metrics.request(path, 200 if _authorized(request, self.api_key) else 401, 0.0)
            if not _authorized(request, self.api_key):
                status, payload = _error(401, "Missing or wrong API key: send 'Authorization: Bearer KEY'.")
                return JSONResponse(payload, status)
            return PlainTextResponse(self.metrics.render(), media_type="text/plain; version=0.0.4")
        else:
            hint = "use GET /health or POST /v1/rerank" if method == "GET" else "use POST /v1/rerank"
            status, payload = _error(404, f"No route {method} {path}; {hint}.", "not_found")
            route = "other"
        self.metrics.request(route, status, time.perf_counter() - started)
        return JSONResponse(payload, status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return JSONResponse(_error(status, f"{request.method} {request.url.path}: {exc}")[1], status)


class AnnouncingServer(uvicorn.Server):
    """Prints its ready line only once the socket listens: a client that reads the line is never refused."""

    def __init__(self, config: uvicorn.Config, ready_line: str) -> None:
        super().__init__(config)
        self.ready_line = ready_line

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            print(self.ready_line, flush=True)


def build_app(model: ServedModel, args: Any) -> Starlette:
    """The Starlette app for the CLI's options (its lifespan starts and stops the model worker)."""
    max_length = int(model.reranker.spec["max_length"])
    handlers = RerankApp(
        model,
        getattr(args, "api_key", None),
        int(getattr(args, "max_documents", MAX_DOCUMENTS)),
        Batcher(
            model.reranker.score_groups, max_length, int(getattr(args, "batch_tokens", DEFAULT_BATCH_TOKENS))
        ),
    )
    handlers.batcher.on_batch = handlers.metrics.batch

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        handlers.batcher.start()  # the ready line comes from the server once its socket listens (serve.py)
        yield
        await handlers.batcher.stop()

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    app = Starlette(
        routes=[Route("/{path:path}", handlers.dispatch, methods=methods)],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.handlers = handlers
    return app
