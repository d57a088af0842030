"""`python -m core serve --model DIR`: POST /v1/rerank (Cohere/Jina/vLLM shape), GET /health and GET /metrics.

The contract is in core.export.protocol, the app (Starlette on uvicorn) in core.export.asgi and the cross-request
batching in core.export.batcher. Binding beyond loopback needs an API key.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from core.export.batcher import DEFAULT_BATCH_TOKENS
from core.export.protocol import MAX_DOCUMENTS, ServedModel


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cli_arguments(parser: Any) -> None:
    """Options of serve."""
    parser.add_argument("--model", required=True, help="an exported bundle or a run's model folder")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback by default)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--max-documents", type=int, default=MAX_DOCUMENTS)
    parser.add_argument(
        "--api-key",
        default=os.environ.get("RERANK_API_KEY"),
        help="require 'Authorization: Bearer KEY' (or X-API-Key) on /v1/rerank and /metrics; required when "
        "--host is not loopback (default: $RERANK_API_KEY)",
    )
    parser.add_argument(
        "--batch-tokens",
        type=int,
        default=DEFAULT_BATCH_TOKENS,
        help="the most (estimated) tokens one model call takes from concurrent requests",
    )
    parser.add_argument(
        "--no-clean",
        action="store_true",
        help="score texts as sent, without the cleaning rules the run's training data went through",
    )


def cli_main(args: Any) -> None:
    """Refuse an open bind without a key, load the model, print one JSON line when ready, serve until stopped."""
    if not is_loopback(args.host) and not args.api_key:
        print(
            f"Refusing to serve on {args.host}: it is reachable from other machines, so an API key is required. "
            "Pass --api-key KEY (or set RERANK_API_KEY), or bind 127.0.0.1.",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(2)
    import uvicorn

    from core.export.asgi import AnnouncingServer, build_app
    from core.scoring.reranker import Reranker

    started = time.time()
    model = ServedModel.of(
        Reranker.load(args.model), Path(args.model).resolve().name, clean=not args.no_clean
    )
    ready = {**model.describe(), "load_s": round(time.time() - started, 2)}
    app = build_app(model, args)
    ready["api_key"] = bool(args.api_key)

    line = json.dumps({"serving": f"http://{args.host}:{args.port}", **ready})
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    AnnouncingServer(config, line).run()
    sys.stdout.flush()
