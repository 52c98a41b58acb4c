"""Overlap input preparation (video decoding, preprocessing) with model compute.

:func:`prefetch` runs ``fn(item)`` for upcoming items in a pool of workers while the caller is busy
with earlier results, and hands results back **in input order**. Each item's exception is captured
and returned in place of its result, so one broken video never stops a batch. At most ``ahead``
items are in flight (submitted but not yet consumed), which bounds memory however long the input is.

:func:`encode_videos`, the loop of every many-video path (``classify`` on files, ``eval``, ``index``),
decodes in worker *processes* (:mod:`actionclip.workers`: PyAV's per-frame loop holds the GIL, so
threads do not scale), receives uint8 crops (a quarter of float32's bytes through the pipe and onto
the device) and normalises them where the model runs (:func:`model_input`). ``prefetch`` alone keeps
threads as its default, for preparations that release the GIL or must share memory (training's
frame cache).

``workers=0`` runs everything sequentially in the calling thread; it is the reference the pooled
paths must match exactly. An input of a single item is prepared in the calling thread too: one video
never waits for a pool to start.

**Other decode sources.** Whether a run also decodes on NVDEC is decided once, in
:func:`sources_for`: when the model runs on CUDA with torch, the preparation is a
:class:`PrepareViews` (which says which items are video files), ``ACTIONCLIP_NVDEC`` is not ``0``
and the library and a GPU are present (else one line says why not). :func:`encode_videos` asks it
unless given ``sources``, so ``classify`` on files, ``eval``, ``index`` and the GPU benchmark all
take NVDEC where it runs, and the CPU workers take what it declines or has no room for.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import functools
import itertools
import os
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from actionclip.errors import VideoError
from actionclip.workers import DecodeSource, available_cores, process_pool, resolve_workers

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel

__all__ = ["prefetch", "default_workers", "encode_videos", "model_input", "sources_for", "PrepareViews",
           "Prepared"]

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Decode workers when none are asked for: one per core this process may use
    (:func:`actionclip.workers.resolve_workers`)."""
    return available_cores()


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
    sources: Sequence[DecodeSource] = (),
) -> Generator[tuple[T, R | Exception], None, None]:
    """Yield ``(item, fn(item))`` for each item, in input order, computing ahead in a worker pool.

    Args:
        fn: the preparation of one item (e.g. decode + preprocess one video).
        items: any iterable; it is consumed lazily, never more than ``ahead`` items past the one
            being yielded.
        workers: pool size; ``0`` computes each item in the calling thread when it is requested.
        ahead: the most items submitted but not yet yielded (default ``2 * workers``); at least
            ``workers`` so that every worker can be busy, plus the ``sources``' capacity.
        processes: decode worker processes (:func:`actionclip.workers.process_pool`) instead of
            threads (``fn`` and the items must then be picklable).
        sources: other decode sources (:class:`~actionclip.workers.DecodeSource`), offered each item
            first; the items none accepts go to the pool (or the calling thread with ``workers=0``, or
            when the input has a single item).

    Yields:
        ``(item, result)``, where ``result`` is the exception ``fn`` raised for that item, if any.
        ``KeyboardInterrupt``/``SystemExit`` are not captured.

    Closing the generator early (``break`` in the consumer, Ctrl-C) cancels the items not yet started
    and waits for the few in progress: no worker outlives it.
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    source = iter(items)
    head = list(itertools.islice(source, 2))
    if not sources and (workers == 0 or len(head) < 2):  # nothing to overlap: no pool to start
        for item in itertools.chain(head, source):
            yield item, _call(fn, item)
        return
    source = itertools.chain(head, source)
    local = workers == 0 or len(head) < 2  # what no source takes is prepared here, when its turn comes
    ahead = max(workers, 1, 2 * workers if ahead is None else ahead) + sum(s.capacity for s in sources)
    pool: cf.Executor | None = None

    def submit(item: T) -> cf.Future:
        nonlocal pool
        for _ in range(2):
            if pool is None:
                pool = process_pool(workers, main=_in_main(fn)) if processes else cf.ThreadPoolExecutor(max_workers=workers)
            try:
                return pool.submit(fn, item)
            except cf.BrokenExecutor:  # a worker died (see below): the next items get a fresh pool
                pool.shutdown(wait=False, cancel_futures=True)
                pool = None
        raise AssertionError("unreachable: a fresh pool accepts work")

    # (item, future), or (item, None) for an item computed in the calling thread when its turn comes
    pending: collections.deque[tuple[T, cf.Future | None]] = collections.deque()
    try:
        exhausted = False
        while True:
            while not exhausted and len(pending) < ahead:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                taker = next((s for s in sources if s.accepts(item)), None)
                if taker is not None:
                    pending.append((item, taker.submit(item)))
                elif local:
                    pending.append((item, None))
                else:
                    pending.append((item, submit(item)))
            if not pending:
                return
            item, future = pending.popleft()
            if future is None:
                yield item, _call(fn, item)
                continue
            yield item, _result(future, functools.partial(submit, item))
    finally:
        for _, future in pending:
            if future is not None:
                future.cancel()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _result(future: cf.Future, again: Callable[[], cf.Future]) -> Any:
    """A future's result or exception. A worker process that dies (FFmpeg crashing on a file, the OOM
    killer) breaks the whole pool and fails every item in it: each such item is tried once more in a
    fresh pool, and the one that breaks that pool too is reported as its own failure."""
    for attempt in range(2):
        try:
            return future.result()
        except cf.BrokenExecutor:
            if attempt == 0:
                future = again()
        except Exception as exc:  # noqa: BLE001 - captured per item by design
            return exc
    return VideoError("its decode worker process died while preparing it (a crash in the decoder, or "
                      "the process was killed)")


def model_input(model: VideoTextModel, views: Sequence[Any]) -> Any:
    """Each item's views ``[V, T, 3, R, R]`` -> one batch ``[B, V, T, 3, R, R]`` of normalised pixels on
    the model's device: uint8 crops (numpy, or tensors from another decode source) are moved first and
    normalised there (:func:`~actionclip.video.preprocess.normalize_uint8`); floats are taken as
    already normalised."""
    import numpy as np

    from actionclip.video.preprocess import normalize_uint8

    if all(isinstance(v, np.ndarray) for v in views):
        batch = model.from_numpy(np.stack(views), on_device=True)
    else:
        batch = model.ops.stack([model.from_numpy(v, on_device=True) if isinstance(v, np.ndarray) else v
                                 for v in views])
    return normalize_uint8(batch, model.config.preprocessing)


def encode_videos(
    model: VideoTextModel,
    items: Iterable[T],
    prepare: Callable[[T], Any],
    *,
    batch_size: int = 1,
    workers: int | None = None,
    sources: Sequence[DecodeSource] | None = None,
) -> Generator[tuple[list[T], Any], None, None]:
    """Decode ahead, encode in batches: the loop of ``classify`` on files, ``eval`` and ``index``.

    ``prepare(item)`` gives an item's views ``[V, T, 3, R, R]`` (every item the same V): uint8 crops
    (:class:`PrepareViews`), normalised where the model runs, or already-normalised floats. It runs
    in ``workers`` decode processes ahead of the model (:func:`actionclip.workers.resolve_workers`:
    None = one per core, 0 = in this thread), or in one of ``sources``: None means
    :func:`sources_for` ``(model, prepare)`` (NVDEC where it runs), made and closed by this run;
    sources given by the caller stay the caller's to close (``()``: the CPU alone). Yields ``(items, features)``
    with features ``[B, V, ...]`` for each encoded batch, and ``([item], exception)`` for an item whose
    preparation failed (or ``(batch, exception)`` when encoding a batch failed), so the caller
    reports it and goes on. Closing the generator early cancels pending decodes at once.
    """
    from actionclip.model.scoring import map_features

    workers = resolve_workers(workers)
    owned = sources_for(model, prepare) if sources is None else []
    sources = owned if sources is None else sources
    prepared = prefetch(prepare, items, workers=workers, processes=True, sources=sources,
                        ahead=max(2, 2 * workers, batch_size + workers))
    batch: list[tuple[T, Any]] = []

    def encode(group: list[tuple[T, Any]]) -> tuple[list[T], Any]:
        members = [item for item, _ in group]
        try:
            with model.inference():
                pixels = model_input(model, [p for _, p in group])  # [B, V, T, 3, R, R]
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
            if isinstance(result, Prepared):
                result = result.apply(item)
            batch.append((item, result))
            if len(batch) >= max(1, batch_size):
                yield encode(batch)
                batch = []
        if batch:
            yield encode(batch)
    finally:
        prepared.close()
        for source in owned:
            source.close()


def sources_for(model: VideoTextModel, prepare: Callable[[Any], Any], *,
                say: Callable[[str], None] | None = None) -> list[DecodeSource]:
    """The decode sources a run of ``model`` with ``prepare`` uses beside the CPU workers: NVDEC
    (:class:`~actionclip.video.nvdec.NvdecSource`, uint8 views left on the GPU for
    :func:`model_input` to normalise) when all of these hold, else ``[]``:

    * the model runs on CUDA with torch (not on the CPU, not ONNX Runtime);
    * ``ACTIONCLIP_NVDEC`` is not ``0`` (the switch to rule NVDEC out when comparing or debugging);
    * ``prepare`` is a :class:`PrepareViews` (its subclasses say through ``video_of`` which items are
      video files and through ``finish`` what else their result carries); any other preparation is
      its own business, which NVDEC cannot stand in for;
    * the library and a GPU are present: else ``[]`` after one line saying why (``say``, default
      stderr; once per process and reason).

    The caller closes what it gets (:func:`encode_videos` does for the sources it asked for)."""
    if os.environ.get("ACTIONCLIP_NVDEC", "1") == "0":
        return []
    if not (model.on_gpu and model.ops.name == "torch") or not isinstance(prepare, PrepareViews):
        return []
    from actionclip.video.nvdec import nvdec_source

    # a torch model's torch.device; "cuda" without an index: GPU 0 (the current one unless changed)
    index = model.device.index
    source = nvdec_source(prepare.views, say=say, frames=prepare.frames, clips=prepare.clips, crops=prepare.crops,
                          normalize=False, gpu_id=int(index or 0), video_of=prepare.video_of, finish=prepare.finish)
    return [] if source is None else [source]


@dataclass(frozen=True)
class Prepared:
    """What a preparation learned about its item besides the views, e.g. the video's duration.

    A worker process prepares a copy of the item, so setting an attribute there is lost; a
    preparation returns ``Prepared(views, notes)`` instead, and :func:`encode_videos` sets ``notes``
    on the caller's item before batching the views."""

    views: Any
    notes: dict[str, Any]

    def apply(self, item: Any) -> Any:
        """Set the notes on ``item``; return the views."""
        for name, value in self.notes.items():
            setattr(item, name, value)
        return self.views


@dataclass(frozen=True)
class PrepareViews:
    """``item -> [V, T, 3, R, R]`` uint8 crops: the ``prepare`` of :func:`encode_videos` for items that
    name a video file (``item.name``, as the user typed it, so errors name it that way; or the item
    itself as a path). Small and picklable: decode processes and Ray tasks run it; the model's side
    normalises what it returns (:func:`model_input`)."""

    views: Any  #: the model's :class:`~actionclip.video.views.VideoViews`
    frames: int
    clips: int = 1
    crops: int = 1

    def __call__(self, item: Any) -> Any:
        video = self.video_of(item)
        if video is None:
            raise ValueError(f"{item!r} names no video file")
        views = self.views(video, frames=self.frames, clips=self.clips, crops=self.crops, normalize=False)
        return self.finish(item, views)

    def video_of(self, item: Any) -> str | None:
        """The video file ``item`` names (so another decoder, NVDEC, may decode it instead), or None
        when it is not one (a subclass's folder of frames): then only ``__call__`` prepares it."""
        # a path item is the video itself (a Path's .name would be its bare file name)
        return os.fspath(item) if isinstance(item, (str, os.PathLike)) else str(item.name)

    def finish(self, item: Any, views: Any) -> Any:
        """The result for ``item`` once its views are decoded, here or by another decoder: the views
        (a subclass may add notes, :class:`Prepared`)."""
        return views


def _in_main(fn: Any) -> bool:
    """Whether ``fn`` (a function, or an instance of a class) is defined in the ``__main__`` script,
    which decode workers then have to import (:func:`actionclip.workers.process_pool`)."""
    module = getattr(fn, "__module__", None) or getattr(type(fn), "__module__", None)
    return module in ("__main__", "__mp_main__")
