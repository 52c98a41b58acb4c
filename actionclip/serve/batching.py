"""Dynamic batching: requests from many clients share one pass of the video encoder.

A model encodes a batch of B videos in much less than B times one video's time (bigger matrix
products on a CPU, a fuller GPU), but a request must not wait long for company. So a single
encoder thread takes whatever is queued, up to ``max_batch`` units (views); when the queue holds
less, it waits for more until the *oldest* waiting item is ``max_wait`` old. Under load the queue is
never short of work and nobody waits; alone, a request waits ``max_wait`` at most.

Results come back as :class:`concurrent.futures.Future` (``await batcher(item)`` from asyncio). An
item whose future was cancelled (its client went away) before its batch started is skipped. A
failure of the batch function fails every item of that batch. Generic: it knows nothing of models.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["DynamicBatcher", "BatchStats"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class BatchStats:
    """How well batching works: passes run, items encoded, the largest pass."""

    batches: int = 0
    items: int = 0
    units: int = 0
    largest: int = 0
    sizes: dict[int, int] = field(default_factory=dict)  #: items per pass -> passes

    def to_dict(self) -> dict[str, object]:
        return {"batches": self.batches, "items": self.items, "units": self.units, "largest": self.largest,
                "mean_items": round(self.items / self.batches, 3) if self.batches else 0.0}


class DynamicBatcher(Generic[T, R]):
    """One worker thread running ``process(items) -> results`` (same length, same order) on batches."""

    def __init__(self, process: Callable[[list[T]], Sequence[R]], *, max_batch: int, max_wait: float,
                 size: Callable[[T], int] = lambda _: 1, name: str = "actionclip-batcher") -> None:
        if max_batch < 1 or max_wait < 0:
            raise ValueError("max_batch must be >= 1 and max_wait >= 0")
        self.process, self.max_batch, self.max_wait, self.size = process, int(max_batch), float(max_wait), size
        self.stats = BatchStats()
        self._queue: deque[tuple[float, T, cf.Future]] = deque()
        self._units = 0  # sum of size() over the queue
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> cf.Future:
        """Queue ``item``; its future gets its result (or exception)."""
        future: cf.Future = cf.Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._queue.append((time.monotonic(), item, future))
            self._units += self.size(item)
            self._cond.notify()
        return future

    async def __call__(self, item: T) -> R:
        """``await`` the result of ``item`` (cancelling the await cancels the item if not started)."""
        return await asyncio.wrap_future(self.submit(item))

    @property
    def queued(self) -> int:
        return len(self._queue)

    def close(self, timeout: float | None = 10.0) -> None:
        """Finish what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _take(self) -> list[tuple[T, cf.Future]] | None:
        """Wait for a batch (see the module notes); None once closed and empty."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            while self._units < self.max_batch and not self._closed:
                left = self._queue[0][0] + self.max_wait - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch: list[Any] = []
            units = 0
            while self._queue:
                size = self.size(self._queue[0][1])
                if batch and units + size > self.max_batch:
                    break
                _, item, future = self._queue.popleft()
                self._units -= size
                if future.set_running_or_notify_cancel():  # False: cancelled while queued
                    batch.append((item, future))
                    units += size
            self.stats.units += units
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            if not batch:
                continue
            items = [item for item, _ in batch]
            # Counted before any future resolves: a caller that reads the stats once its request
            # is answered must see the pass that answered it.
            stats = self.stats
            stats.batches += 1
            stats.items += len(batch)
            stats.largest = max(stats.largest, len(batch))
            stats.sizes[len(batch)] = stats.sizes.get(len(batch), 0) + 1
            try:
                results = list(self.process(items))
                if len(results) != len(items):
                    raise RuntimeError(f"batch function returned {len(results)} results for {len(items)} items")
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
                for _, future in batch:
                    future.set_exception(exc)
            else:
                for (_, future), result in zip(batch, results):
                    future.set_result(result)
