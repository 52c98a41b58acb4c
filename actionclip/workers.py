"""Decode worker processes: how many, how they start, and the one rule every many-video path shares.

Why processes: PyAV's per-frame loop (packets in, frames out, the conversion of each kept frame) runs
in Python and holds the GIL, so decoding threads serialise on it; separate processes do not (the
figures are in docs/speed.md, "Decoding"). Each worker decodes one video at a time with a single
FFmpeg thread and a single torch/OpenMP thread: the parallelism is one video per worker, and N
workers that each started a thread per core would oversubscribe the machine.

The rule (``--workers N`` on every command that reads many videos, ``workers=`` in the library):

* ``N >= 1``: N decode worker processes;
* ``0``: decode in the calling process, one video after the other (the reference the pooled paths
  must match bit for bit);
* ``None`` (the default): one worker per core this process may run on (``sched_getaffinity``).

Workers are forked from a ``forkserver`` (``spawn`` where there is none): never from the calling
process itself, because forking a process whose torch/OpenMP threads are running can deadlock or crash
the child. The server is a fresh interpreter that imports the decoding stack once
(:mod:`actionclip.video.workerboot`: PyAV, numpy, torch for its resize kernel, one thread each)
before forking, so a worker starts in milliseconds instead of paying ~1.5 s of imports (measured
in docs/speed.md). Workers ignore Ctrl-C (the parent stops them: it cancels what has not started and
waits for the clip each is on) and exit with the pool. A single video never pays for a pool start
(:func:`actionclip.pipeline.prefetch`).

Another decode source (NVDEC, say) plugs in beside the worker processes as a :class:`DecodeSource`:
:func:`~actionclip.pipeline.prefetch` offers each item to the sources first and gives the rest to the
workers; results come back in input order from wherever they were decoded.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing.context as mp_context
import os
from multiprocessing import spawn
from typing import Any, Protocol, runtime_checkable

__all__ = ["available_cores", "resolve_workers", "process_pool", "warm_up", "DecodeSource"]

# Environment read by numeric libraries when they start their thread pools: one thread per worker.
_ONE_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on macOS/Windows
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None) -> int:
    """The number of decode worker processes for ``workers`` (see the module notes: None = one per core)."""
    if workers is None:
        return available_cores()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0 or None, got {workers!r}")
    return workers


def _init_worker() -> None:
    """Runs first in each worker process: one thread everywhere, Ctrl-C left to the parent."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in _ONE_THREAD_ENV:
        os.environ[name] = "1"  # read when torch/numpy's BLAS start their pools (not started yet here)
    import sys

    if "torch" in sys.modules:  # pragma: no cover - not imported by the initializer, but be sure
        sys.modules["torch"].set_num_threads(1)
    from actionclip.video.decode import set_decoder_threads

    set_decoder_threads(1)


def process_pool(workers: int, *, main: bool = False) -> cf.ProcessPoolExecutor:
    """A pool of ``workers`` decode worker processes (spawned, one thread each; see the module notes).

    The caller shuts it down (``shutdown(wait=True, cancel_futures=True)``); what it runs must be
    picklable (a module-level function or a small frozen dataclass such as
    :class:`~actionclip.pipeline.PrepareViews`). ``main=True`` when it is defined in the caller's
    ``__main__`` script: only then do the workers import that script (see :func:`_context`)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1 for a pool, got {workers}")
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=_context(main), initializer=_init_worker)


def warm_up(workers: int | None) -> None:
    """Start the fork server now (when ``workers`` asks for a pool), so that its imports overlap
    whatever the caller does next (loading the model) instead of delaying the first video."""
    if resolve_workers(workers) < 1:
        return
    context = _context()
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _context(main: bool = True) -> Any:
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():  # Windows
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # Read when the server starts (the first pool of this process); later pools reuse the server.
    context.set_forkserver_preload(["actionclip.video.workerboot"])
    return context if main else _without_main(context)


# A spawned or forkserver child first re-runs the parent's ``__main__`` script (as ``__mp_main__``), so
# that functions defined there unpickle. A user's script that calls ``actionclip.index(...)`` at its
# top level, without ``if __name__ == "__main__":``, would then run again in every decode worker, and
# fail there as it starts a pool of its own: every video lost (threads never had this problem). The
# workers run actionclip's own preparations, which never live in ``__main__``, so they are started
# without it: processes named with this prefix get preparation data without the main script.
_NO_MAIN_PREFIX = "actionclip-decode-"


class _NoMainProcess:
    """Mixin: a worker process whose name tells :func:`_preparation_data` to leave ``__main__`` out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = _NO_MAIN_PREFIX + self.name  # type: ignore[has-type]


# Module level: a process object is pickled to its child, so its class must be importable.
class _NoMainForkServerProcess(_NoMainProcess, getattr(mp_context, "ForkServerProcess", mp_context.SpawnProcess)):  # type: ignore[misc]
    pass


class _NoMainSpawnProcess(_NoMainProcess, mp_context.SpawnProcess):  # type: ignore[misc]
    pass


def _preparation_data(name: str) -> dict[str, Any]:
    data = _ORIGINAL_PREPARATION_DATA(name)
    if str(name).startswith(_NO_MAIN_PREFIX):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


_ORIGINAL_PREPARATION_DATA = spawn.get_preparation_data


def _without_main(context: Any) -> Any:
    """``context`` whose processes start without the caller's ``__main__`` (see the note above)."""
    # Installed once, on first use: the spawn and forkserver launchers look the function up in
    # multiprocessing.spawn when they start a process; other processes' data is left as it was.
    spawn.get_preparation_data = _preparation_data
    forkserver = context.get_start_method() == "forkserver"
    process = _NoMainForkServerProcess if forkserver else _NoMainSpawnProcess

    class NoMainContext(type(context)):  # type: ignore[misc]
        Process = process

    return NoMainContext()


@runtime_checkable
class DecodeSource(Protocol):
    """Another place an item can be decoded (e.g. NVDEC on the GPU), offered each item before the
    worker processes.

    ``accepts(item)`` says whether this source takes the item (a codec it decodes, a free session);
    ``capacity`` is how many items it keeps in flight at most (the pool looks that many items
    further ahead, so that the source stays busy beside the workers); ``submit(item)`` starts it and
    returns a future of the same result the preparation function would give for it (uint8 views
    ``[V, T, 3, R, R]``, numpy or a tensor on any device: the model input step moves and normalises
    either), or of the exception to report against the item. ``close()`` releases the source; its
    owner calls it (one source may serve many runs): a run that is abandoned only
    cancels the futures it holds."""

    capacity: int

    def accepts(self, item: Any) -> bool: ...

    def submit(self, item: Any) -> cf.Future: ...

    def close(self) -> None: ...
