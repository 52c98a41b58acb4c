"""The model as a service: classify, timeline and live sessions for many clients at once, HTTP-free.

Each request's slow steps run where they belong: decoding in decode worker processes
(:mod:`actionclip.workers`; uint8 crops come back and are normalised on the model's device in the
batched pass) or, for a request of one clip and one crop, on NVDEC where the library's rule gives it
(:func:`actionclip.pipeline.sources_for`; its crops stay on the GPU), probing and other blocking
calls in the thread pool (:mod:`~actionclip.serve.pool`),
label embeddings from the LRU cache (:mod:`~actionclip.serve.labels`), the video encoder in the
dynamic batcher (:mod:`~actionclip.serve.batching`), which stacks the views of every waiting
request into one ``model.encode_video`` call and scores each request against its own labels.
Everything else is the library's: ``model.views`` (decode + preprocess), ``encode_video`` /
``probabilities`` (any model of the contract, whose features may be a
:class:`~actionclip.model.scoring.VideoFeatures`), :func:`~actionclip.temporal.timeline.timeline`,
and the classify record of :mod:`actionclip.results`, so an answer here is exactly what
``classify --json`` / ``timeline --json`` print for the same file.

Errors are the library's one-line :class:`~actionclip.errors.ActionCLIPError`, with the temporary
file's path replaced by the client's file name (a client never sees the server's paths).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actionclip.errors import ActionCLIPError
from actionclip.model.scoring import map_features
from actionclip.pipeline import PrepareViews, model_input, sources_for
from actionclip.results import make_record, public_record
from actionclip.serve.batching import DynamicBatcher
from actionclip.serve.labels import LabelCache
from actionclip.serve.pool import WorkerPool
from actionclip.serve.problems import Problem
from actionclip.serve.settings import ServeSettings
from actionclip.text.labels import check_labels
from actionclip.workers import process_pool

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel

__all__ = ["Engine"]


@dataclass(frozen=True)
class _Job:
    """One request's share of a batch: its views ``[V, T, 3, R, R]`` and its label embeddings."""

    pixels: Any
    label_embeddings: Any

    @property
    def views(self) -> int:
        return int(self.pixels.shape[0])


class Engine:
    """Serves one loaded model (see the module notes)."""

    def __init__(self, model: VideoTextModel, settings: ServeSettings, *, model_name: str,
                 templates: Sequence[str] | None = None) -> None:
        self.model, self.settings, self.model_name = model, settings, model_name
        self.templates = list(templates) if templates else None  # the server's default, else the model's
        self.pool = WorkerPool(max(1, settings.workers))
        self._decoders = process_pool(settings.workers) if settings.workers > 0 else None
        # NVDEC for the usual request (1 clip, 1 crop): one set of sessions, not one per view count
        self._nvdec = sources_for(model, PrepareViews(model.views, model.views.frames))
        self.labels = LabelCache(model, model_name, settings.label_cache)
        self.batcher: DynamicBatcher[_Job, Any] = DynamicBatcher(
            self._encode_and_score, max_batch=settings.batch_size, max_wait=settings.max_wait,
            size=lambda job: job.views)
        self._timelines = asyncio.Semaphore(max(1, settings.timelines))

    # --- requests --------------------------------------------------------------------------------

    async def classify(self, video: str | os.PathLike, name: str, labels: Sequence[str], *,
                       templates: Sequence[str] | None = None, clips: int = 1, crops: int = 1,
                       top_k: int | None = None) -> dict[str, Any]:
        """Rank ``labels`` for ``video`` (shown as ``name``): the ``classify --json`` record."""
        self._check_counts(labels, clips * crops)
        labels = check_labels(labels)
        with self._named(video, name):
            # Labels (a cache hit, or the text encoder) and decoding in two workers at once.
            label_embeddings, pixels = await asyncio.gather(
                self.pool.run(self.labels.get, labels, templates or self.templates),
                self._views(video, clips=clips, crops=crops))
            probs = await self.batcher(_Job(pixels, label_embeddings))
        record = make_record(name, model=self.model_name, frames=self.model.num_frames, clips=clips, crops=crops,
                             labels=labels, probs=probs)
        return public_record(record, top_k)

    async def timeline(self, video: str | os.PathLike, name: str, labels: Sequence[str],
                       **options: Any) -> dict[str, Any]:
        """When each label happens in ``video``: the ``timeline --json`` document, with every window."""
        from actionclip.temporal.timeline import timeline

        self._check_counts(labels, 1)
        templates = options.pop("templates", None) or self.templates
        with self._named(video, name):
            await self.pool.run(self._check_video, video)
            async with self._timelines:
                result = await self.pool.run(timeline, self.model, os.fspath(video), list(labels),
                                             templates=templates, **options)
        doc = result.to_dict()
        doc["video"] = name
        doc["model"] = self.model_name
        return doc

    async def _views(self, video: str | os.PathLike, *, clips: int, crops: int) -> Any:
        """The video's uint8 crops ``[V, T, 3, R, R]``, decoded on NVDEC (one clip and crop, a file it
        takes, a free place) or by a decode worker process (in the thread pool with ``workers=0``); the
        batcher normalises them on the model's device."""
        await self.pool.run(self._check_video, video)
        if clips == crops == 1:
            for source in self._nvdec:
                if await self.pool.run(source.accepts, os.fspath(video)):  # reads the header: off the loop
                    return await asyncio.wrap_future(source.submit(os.fspath(video)))
        prepare = PrepareViews(self.model.views, self.model.views.frames, clips, crops)
        if self._decoders is None:
            return await self.pool.run(prepare, os.fspath(video))
        return await asyncio.get_running_loop().run_in_executor(self._decoders, prepare, os.fspath(video))

    # --- the batched encoder pass (the batcher's thread) -------------------------------------------

    def _encode_and_score(self, jobs: list[_Job]) -> list[Any]:
        """Every job's views in one ``encode_video`` call; each scored against its own labels."""
        model = self.model
        ops = model.ops
        with model.inference():
            # one transfer of uint8 crops, normalised on the model's device
            features = model.encode_video(model_input(model, [_concat(model, [job.pixels for job in jobs])])[0])
            out, start = [], 0
            for job in jobs:
                stop = start + job.views
                own = map_features(features, lambda t, _, a=start, b=stop: t[a:b][None])  # [1, V, ...]
                out.append(ops.to_numpy(model.probabilities(own, job.label_embeddings))[0].tolist())
                start = stop
        return out

    # --- checks ---------------------------------------------------------------------------------------

    def _check_counts(self, labels: Sequence[str], views: int) -> None:
        if not labels:
            raise Problem(400, "no labels: send one 'labels' field per action label")
        if len(labels) > self.settings.max_labels:
            raise Problem(400, f"{len(labels)} labels: this server takes at most {self.settings.max_labels}")
        if views > self.settings.max_views:
            raise Problem(400, f"clips x crops = {views}: this server takes at most {self.settings.max_views} views")

    def _check_video(self, video: str | os.PathLike) -> None:
        from actionclip.video import probe

        limit = self.settings.max_duration
        if not limit:
            return  # decoding reports unreadable videos anyway
        duration = probe(video).duration
        if duration > limit:
            raise Problem(400, f"{os.fspath(video)}: {duration:.1f} s long, over this server's limit of {limit:g} s")

    @contextlib.contextmanager
    def _named(self, video: str | os.PathLike, name: str) -> Iterator[None]:
        """Errors name the client's file, not the temporary one."""
        try:
            yield
        except (ActionCLIPError, Problem) as exc:
            message = str(exc.message if isinstance(exc, Problem) else exc).replace(os.fspath(video), name)
            if isinstance(exc, Problem):
                raise Problem(exc.status, message, exc.headers) from None
            raise type(exc)(message) from None

    # --- what the server says about itself -------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        model = self.model
        config = model.config.to_dict()
        return {
            "name": self.model_name,
            "frames": model.num_frames,
            "resolution": model.input_resolution,
            "templates": self.templates or config["templates"],
            "frame_independent": bool(model.frame_independent),
            "device": str(model.device),
            "dtype": str(model.dtype).replace("torch.", ""),
            "config": config,
        }

    def stats(self) -> dict[str, Any]:
        return {"batching": {**self.batcher.stats.to_dict(), "max_batch": self.batcher.max_batch,
                             "max_wait": self.batcher.max_wait, "queued": self.batcher.queued},
                "label_cache": self.labels.to_dict(), "workers": self.pool.workers}

    def close(self) -> None:
        self.batcher.close()
        self.pool.close()
        if self._decoders is not None:
            self._decoders.shutdown(wait=True, cancel_futures=True)
        for source in self._nvdec:
            source.close()


def _concat(model: VideoTextModel, views: list[Any]) -> Any:
    """Every job's crops ``[V_i, T, 3, R, R]`` -> ``[sum V_i, T, 3, R, R]`` (numpy from the workers; with
    NVDEC's tensors among them, joined on the model's device)."""
    import numpy as np

    if len(views) == 1:
        return views[0]
    if all(isinstance(v, np.ndarray) for v in views):
        return np.concatenate(views)
    return model.ops.cat([model.from_numpy(v, on_device=True) if isinstance(v, np.ndarray) else v for v in views])
