"""Build or update an index: encode each new or changed video once, commit whole videos, resume.

:func:`index` compares every input file's size and modification time (ns) with what the index
holds: unchanged files are skipped, changed ones re-encoded and replaced, new ones added. Nothing is
hashed: reading every file of a million-video archive on each run would cost more than the check is
worth, and a touched file is simply encoded again. Videos are decoded ahead and encoded in batches
by :func:`actionclip.pipeline.encode_videos` (or on a Ray cluster,
:func:`actionclip.collection.raydata.encode_videos_ray`) with the model's own views; with
``window``/``stride`` the moments of each video are embedded too, through the timeline's machinery
(:mod:`actionclip.temporal.plan`, :mod:`~actionclip.temporal.frames`: each grid frame encoded once,
windows fused from the cache when the model allows it; on Ray, in the encoder actors).

Finished videos are committed together every :data:`COMMIT_VIDEOS` videos or :data:`COMMIT_SECONDS`
seconds (see :mod:`~actionclip.collection.store` for why a killed run loses at most that much work
and duplicates nothing). A video that fails is reported through ``on_error`` and the run goes on.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from actionclip.collection.store import Store, features_kind, require_lancedb, to_rows
from actionclip.errors import UsageError
from actionclip.pipeline import Prepared, PrepareViews

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel

__all__ = ["index", "NothingIndexed", "BuildReport", "Job", "COMMIT_VIDEOS", "COMMIT_SECONDS"]

COMMIT_VIDEOS = 1024  # a cluster run finishes thousands of videos a second: commits stay ~1 per second or rarer
COMMIT_SECONDS = 10.0


class NothingIndexed(UsageError):
    """No video of a run could be indexed and there was no index before it: none is left behind.
    Each video's cause has gone to ``on_error``; this exception adds none."""


@dataclass
class Job:
    """One video to encode: ``name`` as given, resolved ``path``, the file's size and mtime (ns), its
    duration once decoded, and (on Ray, with ``window``) its moments once the encoder actor embedded
    them."""

    name: str
    path: str
    size: int
    mtime_ns: int
    duration: float = float("nan")
    moments: list[tuple[float, float, np.ndarray]] | None = None


@dataclass
class BuildReport:
    """What a run did: videos encoded, skipped as unchanged, and failed (``(name, error)``)."""

    encoded: int = 0
    unchanged: int = 0
    replaced: int = 0
    windows: int = 0
    failed: list[tuple[str, BaseException]] = field(default_factory=list)
    seconds: float = 0.0


class Prepare(PrepareViews):
    """:class:`~actionclip.pipeline.PrepareViews` that also learns the file's duration: set on the job
    where it runs (Ray's decoding tasks send it back with the pixels) and returned as a note (a decode
    process works on a copy of the job; :func:`~actionclip.pipeline.encode_videos` sets it on the
    original). NVDEC sessions decode the views on the GPU and finish the same way: the duration is
    read by the CPU reader's probe either way."""

    def finish(self, job: Any, views: Any) -> Any:
        from actionclip.video.decode import probe

        job.duration = float(probe(job.path).duration)
        return Prepared(views, {"duration": job.duration})


def _settings(model: VideoTextModel, frames: int | None, clips: int, crops: int, window: float | None,
              stride: float | None) -> dict[str, Any]:
    from actionclip.temporal.plan import plan_sampling

    frames = int(frames or model.num_frames)
    settings: dict[str, Any] = {"frames": frames, "clips": int(clips), "crops": int(crops), "window": None,
                                "stride": None}
    if stride is not None and window is None:
        raise UsageError("stride needs window (seconds per moment)")
    if window is not None:
        plan = plan_sampling(float(window), float(stride if stride is not None else window / 2), frames)
        settings.update(window=plan.effective_window, stride=plan.stride, grid=plan.grid)
    return settings


def _check_settings(store: Store, meta: dict[str, Any], settings: dict[str, Any]) -> None:
    for key in ("frames", "clips", "crops", "window", "stride"):
        if meta.get(key) != settings.get(key):
            raise UsageError(f"{store.path}: the index was built with {key} = {meta.get(key)}, not "
                             f"{settings.get(key)}; use the same settings or a new index folder")


def _jobs(inputs: Iterable[Any], report: BuildReport, on_error: Callable[[str, BaseException], None]) -> list[Job]:
    """Inputs (paths, or :class:`~actionclip.video.inputs.VideoInput`) -> jobs with their file's stat."""
    from actionclip.errors import VideoError

    jobs = []
    for item in inputs:
        name, path = (item.name, item.path) if hasattr(item, "path") else (os.fspath(item), os.path.realpath(item))
        try:
            st = os.stat(path)
        except OSError as exc:
            error = VideoError(f"{name}: cannot read ({exc.strerror or exc})")
            report.failed.append((name, error))
            on_error(name, error)
            continue
        jobs.append(Job(name, path, st.st_size, st.st_mtime_ns))
    return jobs


class _Writer:
    """Collects whole videos' rows and commits them in groups (see the module notes)."""

    def __init__(self, store: Store, replace: set[str]):
        self.store = store
        self.replace = replace
        self.meta: dict[str, list[Any]] = {k: [] for k in ("path", "video", "kind", "start", "end", "size",
                                                           "mtime_ns", "duration")}
        self.cols: dict[str, list[np.ndarray]] = {}
        self.paths: list[str] = []
        self.features_kind = "tensor"
        self.last = time.monotonic()

    def add(self, job: Job, cols: dict[str, np.ndarray], windows: list[tuple[float, float, np.ndarray]]) -> None:
        """One video: its row (``cols``: one row each) and its windows' ``(start, end, vector)``."""
        kinds = [("video", 0.0, job.duration)] + [("window", s, e) for s, e, _ in windows]
        for kind, start, end in kinds:
            for key, value in zip(self.meta, (job.path, job.name, kind, start, end, job.size, job.mtime_ns,
                                              job.duration)):
                self.meta[key].append(value)
        for name, rows in cols.items():
            block = [rows]
            if windows:
                block.append(np.stack([w for _, _, w in windows]) if name == "vector"
                             else np.full((len(windows), rows.shape[1]), np.nan, np.float32))
            self.cols.setdefault(name, []).extend(block)
        self.paths.append(job.path)

    def due(self) -> bool:
        return len(self.paths) >= COMMIT_VIDEOS or bool(self.paths and time.monotonic() - self.last >= COMMIT_SECONDS)

    def flush(self) -> None:
        if self.paths:
            replace = [p for p in self.paths if p in self.replace]
            self.store.add(self.meta, {k: np.concatenate(v) for k, v in self.cols.items()}, replace,
                           self.features_kind)
            for key in self.meta:
                self.meta[key] = []
            self.cols = {}
            self.paths = []
        self.last = time.monotonic()


def _window_vectors(model: VideoTextModel, path: str, settings: dict[str, Any],
                    batch_size: int) -> list[tuple[float, float, np.ndarray]]:
    """``(start, end, unit vector)`` of each moment of a video (the timeline's windows)."""
    from actionclip.temporal.frames import FrameEncoder, iter_windows
    from actionclip.temporal.plan import plan_sampling
    from actionclip.temporal.windows import window_features
    from actionclip.video.decode import iter_frames

    plan = plan_sampling(settings["window"], settings["stride"], settings["frames"])
    encoder = FrameEncoder(model, batch_size)
    spans: list[tuple[float, float]] = []
    vectors: list[np.ndarray] = []
    units: list[Any] = []

    def fuse() -> None:
        if units:
            with model.inference():
                features = window_features(model, encoder.stack(units))
            vectors.append(model.ops.to_numpy(model.ops.float32(features)))
            units.clear()

    for start, end, unit in iter_windows(iter_frames(path, fps=1.0 / plan.grid), plan, encoder):
        spans.append((start, end))
        units.append(unit)
        if len(units) >= 64:
            fuse()
    fuse()
    if not spans:
        return []
    from actionclip.model.scoring import NUMPY

    emb = NUMPY.l2(np.concatenate(vectors))
    return [(s, e, v) for (s, e), v in zip(spans, emb)]


@dataclass
class Moments:
    """``(model, job) -> [(start, end, vector), ...]``: what Ray's encoder actors run on each video
    (:func:`_window_vectors`, the local path's own function, so both paths store the same moments)."""

    settings: dict[str, Any]

    def __call__(self, model: VideoTextModel, job: Job) -> list[tuple[float, float, np.ndarray]]:
        return _window_vectors(model, job.name, self.settings, batch_size=32)


def _to_numpy(model: VideoTextModel, features: Any) -> Any:
    from actionclip.model.scoring import map_features

    return map_features(features, lambda t, _: np.asarray(t, dtype=np.float32) if isinstance(t, np.ndarray)
                        else model.ops.to_numpy(model.ops.float32(t)))


def index(
    videos: Iterable[str | os.PathLike] | str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: VideoTextModel | str | os.PathLike | None = None,
    frames: int | None = None,
    clips: int | None = None,
    crops: int | None = None,
    window: float | None = None,
    stride: float | None = None,
    device: str = "auto",
    dtype: str | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    ray: str | bool | None = None,
    on_error: Callable[[str, BaseException], None] | None = None,
    on_video: Callable[[str], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> Any:
    """Embed videos once into the index folder ``out`` (created, or updated incrementally).

    Args:
        videos: files, folders and glob patterns (as ``actionclip classify`` takes them).
        out: the index folder.
        model: a registry name or checkpoint path (default: the index's own model, or the default
            model for a new index), or a loaded model.
        frames, clips, crops: the views each video is embedded from (fixed per index: default the
            index's own, else the model's frames and 1 clip, 1 crop).
        window, stride: also embed moments: windows of ``window`` seconds every ``stride`` seconds
            (default ``window / 2``), as ``timeline`` scores them (fixed per index).
        device, dtype: where and in what precision to run a model given by name.
        batch_size: videos per encoder call (default 1 on CPU, 8 on CUDA).
        workers: decoding threads (default up to 4).
        ray: encode on Ray: ``True`` or ``"local"`` starts a local Ray runtime, a string is a cluster
            address (``"auto"``, ``"ray://host:10001"``).
        on_error: called with ``(name, error)`` for each video that fails (the run goes on).
        on_video: called with each video's name once it is encoded (or has failed).
        on_start: called once with the number of videos to encode.

    Returns:
        the :class:`~actionclip.collection.query.Index`, with this run's :class:`BuildReport` as
        ``index.report``.
    """
    import actionclip.collection.model_ref as model_ref
    from actionclip.collection.query import Index
    from actionclip.model.scoring import VideoFeatures
    from actionclip.video.inputs import InputError, expand_videos

    require_lancedb()
    t0 = time.perf_counter()
    report = BuildReport()
    on_error = on_error or (lambda name, exc: None)
    on_video = on_video or (lambda name: None)
    store = Store(out)
    inputs = expand_videos([os.fspath(videos)] if isinstance(videos, (str, os.PathLike)) else
                           [os.fspath(v) for v in videos])
    for bad in (i for i in inputs if isinstance(i, InputError)):
        error = UsageError(f"{bad.name}: {bad.cause}")
        report.failed.append((bad.name, error))
        on_error(bad.name, error)
    existed = store.path.exists()
    if not existed and all(isinstance(i, InputError) for i in inputs):
        raise NothingIndexed(f"{store.path}: no video to index; nothing was written")
    try:
        with store.writing():
            meta = store.read_meta() if store.exists() else None
            requested = model if isinstance(model, (str, os.PathLike)) else None
            if model is None:
                from actionclip.loading.registry import DEFAULT_MODEL

                requested = model_ref.target(meta["model"], store.path) if meta else DEFAULT_MODEL
            if isinstance(requested, (str, os.PathLike)):
                from actionclip.loading.load import load

                model = load(requested, device=device, dtype=dtype or (meta["model"].get("dtype") if meta else None))
            model = cast("VideoTextModel", model)  # a name or a path was loaded just above
            if meta:  # options not given keep the index's own
                frames, clips, crops = frames or meta["frames"], clips or meta["clips"], crops or meta["crops"]
                if window is None and stride is None:
                    window, stride = meta["window"], meta["stride"]
            settings = _settings(model, frames, clips or 1, crops or 1, window, stride)
            if meta:
                model_ref.check(meta["model"], model, store.path)
                _check_settings(store, meta, settings)
            else:
                store.write_meta({"model": model_ref.describe(model, requested), **settings})
            jobs = _jobs([i for i in inputs if not isinstance(i, InputError)], report, on_error)
            done = store.videos()
            todo = [j for j in jobs if done.get(j.path) != (j.size, j.mtime_ns)]
            report.unchanged = len(jobs) - len(todo)
            replace = {j.path for j in todo if j.path in done}
            report.replaced = len(replace)
            if on_start:
                on_start(len(todo))
            on_gpu = model.on_gpu
            batch_size = batch_size or (8 if on_gpu else 1)
            prepare = Prepare(model.views, settings["frames"], settings["clips"], settings["crops"])
            if ray:
                from actionclip.collection.raydata import encode_videos_ray

                encoded = encode_videos_ray(requested or model, todo, prepare, batch_size=batch_size,
                                            address=None if ray is True or ray == "local" else str(ray),
                                            dtype=model.dtype_name,
                                            moments=Moments(settings) if settings["window"] is not None else None)
            else:
                from actionclip.pipeline import encode_videos

                encoded = encode_videos(model, todo, prepare, batch_size=batch_size, workers=workers)
            writer = _Writer(store, replace)
            try:
                for batch, features in encoded:
                    if isinstance(features, BaseException):
                        for job in batch:
                            report.failed.append((job.name, features))
                            on_error(job.name, features)
                            on_video(job.name)
                        continue
                    if isinstance(features, VideoFeatures) and settings["window"] is not None:
                        raise UsageError("window: moments cannot be searched for a model whose text depends on "
                                         "the video; index without window")
                    writer.features_kind = features_kind(features)
                    rows = to_rows(_to_numpy(model, features))
                    for i, job in enumerate(batch):
                        cols = {k: v[i : i + 1] for k, v in rows.items()}
                        windows: list[tuple[float, float, np.ndarray]] = job.moments or []
                        if settings["window"] is not None and job.moments is None:
                            try:
                                windows = _window_vectors(model, job.name, settings, batch_size=32)
                            except Exception as exc:  # noqa: BLE001 - reported, the run goes on
                                report.failed.append((job.name, exc))
                                on_error(job.name, exc)
                                on_video(job.name)
                                continue
                        writer.add(job, cols, windows)
                        report.encoded += 1
                        report.windows += len(windows)
                        on_video(job.name)
                    if writer.due():
                        writer.flush()
            finally:
                close = getattr(encoded, "close", None)
                if close:
                    close()
                writer.flush()  # whatever finished before an interruption is kept
            store.finish()
    except BaseException:
        if not existed and report.encoded == 0:  # it created the index and failed before storing a video
            shutil.rmtree(store.path, ignore_errors=True)
        raise  # (an interrupted run that stored videos keeps them: the next run resumes)
    if not existed and report.encoded == 0:  # every video failed: leave no empty index behind
        shutil.rmtree(store.path, ignore_errors=True)
        raise NothingIndexed(f"{store.path}: no video could be indexed; nothing was written")
    report.seconds = time.perf_counter() - t0
    result = Index(out, model=model)
    result.report = report
    return result
