"""Concurrent requests scored together: one model worker drains an asyncio queue into batches up to a token budget.

While the model scores one batch, new requests wait in the queue; the next batch takes all of them that fit the
budget, so under load the model runs large batches and is never idle between requests. One worker thread means one
model call at a time (torch already uses every core) while the event loop keeps reading and answering requests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Group = tuple[str, list[str]]
ScoreGroups = Callable[[list[Group]], list[np.ndarray]]
DEFAULT_BATCH_TOKENS = 16_384


def pair_tokens(query: str, passages: list[str], max_length: int) -> int:
    """A cheap estimate of the tokens a group costs the model (about 4 characters a token, capped at max length)."""
    q = len(query) // 4 + 3
    return sum(min(max_length, q + len(p) // 4) for p in passages)


@dataclass
class _Item:
    group: Group
    tokens: int
    future: asyncio.Future = field(repr=False)


class Batcher:
    """`await batcher.score(query, passages)` from any number of requests; scored in shared batches."""

    def __init__(
        self,
        score_groups: ScoreGroups,
        max_length: int,
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
        wait_s: float = 0.002,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        self.score_groups, self.max_length, self.batch_tokens = score_groups, max_length, batch_tokens
        self.wait_s, self.on_batch = wait_s, on_batch
        self.queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self.queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the worker and its thread."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def score(self, query: str, passages: list[str]) -> np.ndarray:
        """The group's scores, computed in whatever batch the worker puts it in."""
        assert self.queue is not None, "Batcher.start() was not called"
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(_Item((query, passages), pair_tokens(query, passages, self.max_length), future))
        return await future

    async def _take(self) -> list[_Item]:
        """The oldest waiting item and every later one that fits the token budget (the first always goes)."""
        assert self.queue is not None
        batch = [await self.queue.get()]
        used = batch[0].tokens
        if self.wait_s and self.queue.empty():
            await asyncio.sleep(self.wait_s)  # let requests that arrived together share the batch
        while not self.queue.empty():
            nxt = self.queue._queue[0]  # type: ignore[attr-defined]  # noqa: SLF001 - peek without taking: an item over budget waits its turn
            if used + nxt.tokens > self.batch_tokens:
                break
            batch.append(self.queue.get_nowait())
            used += nxt.tokens
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [it for it in await self._take() if not it.future.done()]
            if not batch:
                continue
            try:
                scores = await loop.run_in_executor(self._pool, self.score_groups, [it.group for it in batch])
                results: list[np.ndarray | BaseException] = list(scores)
            except Exception:  # noqa: BLE001 - find the request that failed; the others still get answers
                results = [await self._alone(loop, it.group) for it in batch]
            if self.on_batch:
                self.on_batch(len(batch), sum(len(it.group[1]) for it in batch))
            for it, res in zip(batch, results):
                if it.future.done():
                    continue
                if isinstance(res, BaseException):
                    it.future.set_exception(res)
                else:
                    it.future.set_result(res)

    async def _alone(self, loop: asyncio.AbstractEventLoop, group: Group) -> np.ndarray | BaseException:
        try:
            return (await loop.run_in_executor(self._pool, self.score_groups, [group]))[0]
        except Exception as exc:  # noqa: BLE001 - handed to that request's handler as a 500
            return exc
