"""A SentenceTransformer stand-in for the library's miner whose encode calls are served from the studio's
embedding cache, so a re-run with other parameters embeds nothing again."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core import models
from core.embeddings import embed_texts
from core.mining.params import MiningError
from core.progress import Progress, counted, noop, scaled

# Where each role's embedding sits on the run's progress bar (the rest: search, risk, saving).
PHASES = {"passages": (0.0, 0.6), "queries": (0.6, 0.7)}


class CachedEncoder:
    """A SentenceTransformer stand-in for `mine_hard_negatives`: encode_query/encode_document come from the
    studio's disk cache (prompts applied as the library would), everything else from the real model."""

    def __init__(
        self, spec: str, workspace: Path, progress: Progress | None = None, trust_remote_code: bool = False
    ):
        self._spec, self._workspace, self._progress = spec, workspace, progress or noop
        self._trust = trust_remote_code
        self._model = models.load_embedder(spec, trust_remote_code=trust_remote_code)
        self.cache = {"cached": 0, "computed": 0}
        self.seconds = 0.0
        self.embeddings: dict[str, tuple[list[str], np.ndarray]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def _prompt(self, prompt: str | None, prompt_name: str | None, defaults: tuple[str, ...]) -> str:
        prompts = getattr(self._model, "prompts", {}) or {}
        if prompt is not None:
            return prompt
        if prompt_name is None:
            prompt_name = next((n for n in defaults if n in prompts), None)
        return prompts.get(prompt_name, "") if prompt_name else ""

    def _encode(
        self, role: str, inputs: Sequence[str], prompt: str, batch_size: int, **kwargs: Any
    ) -> np.ndarray:
        if kwargs.get("pool") is not None or kwargs.get("convert_to_tensor"):
            raise MiningError("Multi-process encoding is not supported with the studio's embedding cache.")
        start = time.perf_counter()
        texts = [prompt + t for t in inputs] if prompt else list(inputs)
        stats: dict[str, int] = {}
        phase = scaled(self._progress, *PHASES[role])
        vectors = embed_texts(
            texts,
            self._spec,
            workspace=self._workspace,
            batch_size=batch_size,
            stats=stats,
            trust_remote_code=self._trust,
            progress=counted(phase, f"embedding {role}"),
        )
        for k in self.cache:
            self.cache[k] += stats.get(k, 0)
        self.embeddings[role] = (list(inputs), vectors)
        self.seconds += time.perf_counter() - start
        phase(1.0, "searching" if role == "queries" else f"embedding {role}")
        return vectors

    def encode_document(
        self,
        inputs: Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        **kwargs: Any,
    ) -> np.ndarray:
        """Passages, with the model's document prompt when it has one."""
        return self._encode(
            "passages",
            inputs,
            self._prompt(prompt, prompt_name, ("document", "passage", "corpus")),
            batch_size,
            **kwargs,
        )

    def encode_query(
        self,
        inputs: Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        **kwargs: Any,
    ) -> np.ndarray:
        """Queries, with the model's query prompt when it has one."""
        return self._encode(
            "queries", inputs, self._prompt(prompt, prompt_name, ("query",)), batch_size, **kwargs
        )
