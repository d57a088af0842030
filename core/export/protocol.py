"""The /v1/rerank contract: request validation (the bad-input catalogue), the served model, the response shape.

Request: {"query": str, "documents": [str | {"text": str}], "top_n"?: int, "return_documents"?: bool, "model"?: str}
Response: {"model": name, "results": [{"index", "relevance_score", "raw_score", "document"?: {"text"}}],
"usage": {...}}; `relevance_score` is P(relevant) in [0, 1] from the bundle's calibration, `raw_score` the run's
evaluated score. Errors: 4xx with {"error": {"type", "message"}}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import UserError
from core.ingest.cleaning import CleaningOptions, clean_input, inference_options
from core.scoring.calibration import apply_calibration

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


@dataclass
class ServedModel:
    """The loaded Reranker with what the bundle says about its inputs (cleaning) and outputs (calibration)."""

    reranker: Any
    name: str
    cleaning: CleaningOptions
    calibration: dict[str, Any] | None

    @classmethod
    def of(cls, reranker: Any, name: str, clean: bool = True) -> ServedModel:
        """Read the cleaning rules and the calibration from the model's spec (a run folder has neither)."""
        spec = reranker.spec
        return cls(reranker, name, inference_options(spec.get("cleaning"), clean), spec.get("calibration"))

    def clean(self, text: str) -> str:
        """The text as training saw it (the bundle's cleaning rules), or as sent when cleaning is off."""
        return clean_input(text, self.cleaning)

    def inputs(self, request: dict[str, Any]) -> tuple[str, list[str]]:
        """The (query, passages) group to score, cleaned like the training data."""
        return self.clean(request["query"]), [self.clean(d) for d in request["documents"]]

    def relevance(self, scores: np.ndarray) -> np.ndarray:
        """P(relevant) in [0, 1]: the calibration; else a [0, 1] score as is; else a sigmoid (uncalibrated)."""
        s = np.asarray(scores, dtype=float)
        if self.calibration is None and len(s) and s.min() >= 0.0 and s.max() <= 1.0:
            if self.reranker.kind == "cross-encoder" and self.reranker.spec.get("activation") == "sigmoid":
                return s
        return apply_calibration(self.calibration, s)

    def describe(self) -> dict[str, Any]:
        """What /health says about the scores and the inputs."""
        cal = self.calibration
        return {
            "model": self.name,
            "kind": self.reranker.kind,
            "relevance_score": f"{cal['method']} calibration fitted on {cal.get('fitted_on', 'validation')}"
            if cal
            else "not calibrated (the bundle carries no calibration)",
            "cleaning": self.cleaning.names(),
        }


def rerank_response(model: ServedModel, request: dict[str, Any], scores: np.ndarray) -> dict[str, Any]:
    """The ranked results for a validated request and its raw scores (the run's evaluated score)."""
    raw = np.asarray(scores, dtype=float)
    rel = model.relevance(raw)
    order = sorted(range(len(raw)), key=lambda i: (-float(raw[i]), i))[: request["top_n"]]
    results = []
    for i in order:
        item: dict[str, Any] = {"index": i, "relevance_score": float(rel[i]), "raw_score": float(raw[i])}
        if request["return_documents"]:
            item["document"] = {"text": request["documents"][i]}
        results.append(item)
    return {"model": model.name, "results": results, "usage": {"documents": len(request["documents"])}}
