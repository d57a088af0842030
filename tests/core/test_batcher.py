"""Concurrent requests share model calls up to a token budget; a failing request does not fail its batch-mates."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

import numpy as np
import pytest

from core.export.batcher import Batcher, pair_tokens


class SlowModel:
    """Scores a passage by its length; each call takes 50 ms (like a model), and records the groups it got."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, groups):
        time.sleep(0.05)
        self.calls.append([q for q, _ in groups])
        if any(q == "boom" for q, _ in groups):
            raise RuntimeError("bad input")
        return [np.array([float(len(p)) for p in ps]) for _, ps in groups]


def _run(batcher: Batcher, queries: list[str]):
    async def go():
        batcher.start()
        try:
            return await asyncio.gather(
                *(batcher.score(q, ["a" * (i + 1), "bb"]) for i, q in enumerate(queries)),
                return_exceptions=True,
            )
        finally:
            await batcher.stop()

    # in a thread of its own: a browser test earlier in the session may leave this thread's event loop running
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def test_concurrent_requests_share_batches_and_get_their_own_scores():
    model = SlowModel()
    out = _run(Batcher(model, max_length=64), [f"q{i}" for i in range(8)])
    assert [list(o) for o in out] == [[float(i + 1), 2.0] for i in range(8)]
    assert len(model.calls) < 8 and sum(len(c) for c in model.calls) == 8
    assert max(len(c) for c in model.calls) >= 4


def test_token_budget_caps_a_batch():
    model = SlowModel()
    per = pair_tokens("q0", ["a", "bb"], 64)
    _run(Batcher(model, max_length=64, batch_tokens=2 * per), [f"q{i}" for i in range(6)])
    assert max(len(c) for c in model.calls) <= 2 and sum(len(c) for c in model.calls) == 6


def test_a_failing_request_fails_alone():
    model = SlowModel()
    out = _run(Batcher(model, max_length=64), ["q0", "boom", "q2"])
    assert isinstance(out[1], RuntimeError) and list(out[0]) == [1.0, 2.0] and list(out[2]) == [3.0, 2.0]


@pytest.mark.parametrize("max_length, want", [(512, (1 + 3 + 25) + (1 + 3 + 2)), (10, 10 + (1 + 3 + 2))])
def test_pair_tokens_estimate(max_length, want):
    assert pair_tokens("q" * 4, ["p" * 100, "p" * 8], max_length) == want
