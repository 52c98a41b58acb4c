"""Overlap input preparation (video decoding, preprocessing) with model compute.

:func:`prefetch` runs ``fn(item)`` for upcoming items in a pool of workers while the caller is busy
with earlier results, and hands results back **in input order**. Each item's exception is captured
and returned in place of its result, so one broken video never stops a batch. At most ``ahead``
items are in flight (submitted but not yet consumed), which bounds memory however long the input is.

Threads are the default: PyAV releases the GIL while decoding and torch while resizing, so a thread
pool overlaps well and needs no pickling. ``processes=True`` uses a process pool instead, for
preparation functions that hold the GIL (``fn`` and the items must then be picklable).

``workers=0`` runs everything sequentially in the calling thread; it is the reference the pooled
paths must match exactly.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel

__all__ = ["prefetch", "default_workers", "encode_videos", "PrepareViews"]

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """A sensible number of preparation workers for this machine (1-4)."""
    import os

    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not available on macOS/Windows
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def _call(fn: Callable[[T], R], item: T) -> R | Exception:
    """Run ``fn(item)`` and return its exception instead of raising it (sequential path)."""
    try:
        return fn(item)
    except Exception as exc:  # noqa: BLE001 - captured per item by design
        return exc


def prefetch(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int = 2,
    ahead: int | None = None,
    processes: bool = False,
) -> Generator[tuple[T, R | Exception], None, None]:
    """Yield ``(item, fn(item))`` for each item, in input order, computing ahead in a worker pool.

    Args:
        fn: the preparation of one item (e.g. decode + preprocess one video).
        items: any iterable; it is consumed lazily, never more than ``ahead`` items past the one
            being yielded.
        workers: pool size; ``0`` computes each item in the calling thread when it is requested.
        ahead: the most items submitted but not yet yielded (default ``2 * workers``); at least
            ``workers`` so that every worker can be busy.
        processes: use a process pool instead of threads.

    Yields:
        ``(item, result)``, where ``result`` is the exception ``fn`` raised for that item, if any.
        ``KeyboardInterrupt``/``SystemExit`` are not captured.

    Closing the generator early (``break`` in the consumer) cancels the items not yet started and
    waits for the few in progress.
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if workers == 0:
        for item in items:
            yield item, _call(fn, item)
        return
    ahead = max(workers, 2 * workers if ahead is None else ahead)
    if processes:
        import multiprocessing

        # "spawn", not the default "fork": forking a process whose torch/OpenMP threads are running
        # can deadlock or crash the child (seen here as a segfault in the decoder workers).
        pool: cf.Executor = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    else:
        pool = cf.ThreadPoolExecutor(max_workers=workers)
    pending: collections.deque[tuple[T, cf.Future]] = collections.deque()
    source = iter(items)
    try:
        exhausted = False
        while True:
            while not exhausted and len(pending) < ahead:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                pending.append((item, pool.submit(fn, item)))
            if not pending:
                return
            item, future = pending.popleft()
            try:
                result: R | Exception = future.result()
            except Exception as exc:  # noqa: BLE001 - captured per item by design
                result = exc
            yield item, result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def encode_videos(
    model: VideoTextModel,
    items: Iterable[T],
    prepare: Callable[[T], Any],
    *,
    batch_size: int = 1,
    workers: int | None = None,
    processes: bool = False,
) -> Generator[tuple[list[T], Any], None, None]:
    """Decode ahead, encode in batches: the loop of ``classify`` on files, ``eval`` and ``index``.

    ``prepare(item)`` gives an item's normalised views ``[V, T, 3, R, R]`` (every item the same V);
    it runs in ``workers`` threads (or processes) ahead of the model. Yields ``(items, features)``
    with features ``[B, V, ...]`` for each encoded batch, and ``([item], exception)`` for an item whose
    preparation failed (or ``(batch, exception)`` when encoding a batch failed), so the caller
    reports it and goes on. Closing the generator early cancels pending decodes at once.
    """
    from actionclip.model.scoring import map_features

    workers = default_workers() if workers is None else workers
    prepared = prefetch(prepare, items, workers=workers, processes=processes,
                        ahead=max(2, 2 * workers, batch_size + workers))
    batch: list[tuple[T, Any]] = []

    def encode(group: list[tuple[T, Any]]) -> tuple[list[T], Any]:
        members = [item for item, _ in group]
        try:
            with model.inference():
                pixels = model.ops.stack([p for _, p in group])  # [B, V, T, 3, R, R]
                b, v = pixels.shape[:2]
                features = model.encode_video(pixels.reshape(b * v, *pixels.shape[2:]))
                return members, map_features(features, lambda t, k: t.reshape(b, v, *t.shape[t.ndim - k:]))
        except Exception as exc:  # noqa: BLE001 - reported against the batch's videos
            return members, exc

    try:
        for item, result in prepared:
            if isinstance(result, BaseException):
                yield [item], result
                continue
            batch.append((item, result))
            if len(batch) >= max(1, batch_size):
                yield encode(batch)
                batch = []
        if batch:
            yield encode(batch)
    finally:
        prepared.close()


@dataclass(frozen=True)
class PrepareViews:
    """``item -> [V, T, 3, R, R]`` normalised views: the ``prepare`` of :func:`encode_videos` for items
    that name a video file (``item.name``, as the user typed it, so errors name it that way; or the
    item itself as a path). Small and picklable: decoding threads, processes and Ray tasks run it."""

    views: Any  #: the model's :class:`~actionclip.video.views.VideoViews`
    frames: int
    clips: int = 1
    crops: int = 1

    def __call__(self, item: Any) -> Any:
        return self.views(getattr(item, "name", item), frames=self.frames, clips=self.clips, crops=self.crops)
