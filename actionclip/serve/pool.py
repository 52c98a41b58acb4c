"""The worker threads that run the model's blocking calls, off the event loop.

The event loop only moves bytes and JSON; anything that takes milliseconds (probing, label encoding,
a timeline) runs here, so one slow video never stalls the other clients. Decoding a request's clip
runs in decode worker processes instead (:mod:`actionclip.workers`: PyAV's per-frame loop holds the
GIL), or here with ``workers=0``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import functools
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["WorkerPool"]

R = TypeVar("R")


class WorkerPool:
    """``await pool.run(fn, *args, **kwargs)`` runs ``fn`` in one of ``workers`` threads."""

    def __init__(self, workers: int, name: str = "actionclip-decode") -> None:
        self.workers = max(1, int(workers))
        self._executor = cf.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=name)

    async def run(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
