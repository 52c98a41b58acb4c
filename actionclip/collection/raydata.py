"""Encode videos on a Ray cluster: the same contract as :func:`actionclip.pipeline.encode_videos`.

A collection of millions of clips outgrows one machine. :func:`encode_videos_ray` spreads the two
costs over a Ray cluster with Ray Data, and hands the results back to the caller (``index`` writes
them to the index, ``classify --ray`` scores them) exactly as the local loop would:

1. the items (paths) become a dataset;
2. **decoding** runs in CPU tasks: the model's :class:`~actionclip.pipeline.PrepareViews` (the
   same sampling and preprocessing as the local path) gives each video's normalised views;
3. **encoding** runs in an actor pool: each actor loads the model once (``actionclip.load``, on a
   GPU when the cluster has them: one actor per GPU, 32 videos per batch; else CPU actors, 4 per
   batch) and encodes batches of views;
4. the caller receives ``(items, features [B, V, ...])`` per batch, in input order, or
   ``([item], error)`` for a video that failed; nothing is lost and the run goes on.

With ``moments`` (``index --window``) each encoder actor also embeds every video's moments right
after its views, with the model it already holds: the windows stream through the timeline's
machinery (each grid frame decoded and encoded once, memory flat however long the video), so
nothing larger than the moments' vectors travels back; they arrive as ``item.moments``.

Without an address a local Ray runtime is started (and stopped at the end); ``"auto"`` joins the
cluster this machine belongs to, ``"ray://HOST:10001"`` a remote one. See docs/index.md for running
on a cluster with ``ray job submit``. Needs the optional ``ray`` extra.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from actionclip.errors import ActionCLIPError, UsageError, VideoError

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel

__all__ = ["encode_videos_ray", "require_ray", "GPU_BATCH", "CPU_BATCH"]

GPU_BATCH = 32  # videos per encoder call on a GPU actor (8 frames each: 256 images)
CPU_BATCH = 4


def require_ray() -> Any:
    """``ray`` with Ray Data, or a one-line error saying how to install it."""
    from actionclip.extras import require

    require("ray", "running on Ray")
    import ray

    return ray


def _cause(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, ActionCLIPError) else f"{type(exc).__name__}: {exc}"


class _Decode:
    """Ray task: one row ``{"item"}`` -> ``{"pixels", "duration", "error"}``."""

    def __init__(self, prepare: Any):
        self.prepare = prepare

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        item = pickle.loads(row["item"])
        try:
            from actionclip.pipeline import Prepared

            pixels = self.prepare(item)
            if isinstance(pixels, Prepared):  # its notes are set on the item here already
                pixels = pixels.views
            pixels = np.ascontiguousarray(np.asarray(pixels))  # uint8 crops: the encoder normalises
            error = ""
        except Exception as exc:  # noqa: BLE001 - reported against this video
            pixels, error = np.zeros((0,), np.uint8), _cause(exc)
        return {"i": row["i"], "item": row["item"], "pixels": pixels,
                "duration": float(getattr(item, "duration", math.nan)), "error": error}


class _Encode:
    """Ray actor: loads the model once, encodes batches of views (and the videos' moments)."""

    def __init__(self, model: VideoTextModel | str | os.PathLike, dtype: str | None, frames: int | None, gpu: bool,
                 moments: Any = None):
        import torch

        self.moments = moments

        if isinstance(model, (str, bytes, os.PathLike)):
            from actionclip.loading.load import load

            model = load(model, device="cuda" if gpu else "cpu", dtype=dtype, frames=frames)
        self.model = model
        if not gpu:
            torch.set_num_threads(1)  # one CPU per actor: Ray gave it one

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        from actionclip.model.scoring import VideoFeatures, map_features
        from actionclip.pipeline import model_input

        model = self.model
        n = len(batch["i"])
        ok = [j for j in range(n) if not batch["error"][j]]
        errors = list(batch["error"])
        emb: list[Any] = [np.zeros((0,), np.float32)] * n
        tokens: list[Any] = [np.zeros((0,), np.float32)] * n
        if ok:
            try:
                with model.inference():
                    pixels = model_input(model, [batch["pixels"][j] for j in ok])  # [B, V, T, 3, R, R]
                    b, v = pixels.shape[:2]
                    features = model.encode_video(pixels.reshape(b * v, *pixels.shape[2:]))
                    features = map_features(features, lambda t, k: model.ops.to_numpy(model.ops.float32(
                        t.reshape(b, v, *t.shape[t.ndim - k:]))))
                parts = features if isinstance(features, VideoFeatures) else VideoFeatures(features)
                for row, j in enumerate(ok):
                    emb[j] = parts.embedding[row]
                    if parts.tokens is not None:
                        tokens[j] = parts.tokens[row]
            except Exception as exc:  # noqa: BLE001 - reported against the batch's videos
                for j in ok:
                    errors[j] = _cause(exc)
        kind = "VideoFeatures" if ok and isinstance(features, VideoFeatures) else "tensor"
        spans: list[Any] = [np.zeros((0, 2))] * n
        vectors: list[Any] = [np.zeros((0, 0), np.float32)] * n
        # Moments of a model whose text depends on the video cannot be searched: the driver refuses
        # them on the first batch, as the local path does; no actor time is spent on them first.
        for j in range(n) if self.moments is not None and kind != "VideoFeatures" else ():
            if errors[j]:
                continue
            try:
                found = self.moments(model, pickle.loads(batch["item"][j]))
            except Exception as exc:  # noqa: BLE001 - reported against this video
                errors[j] = _cause(exc)
                continue
            if found:
                spans[j] = np.asarray([(start, end) for start, end, _ in found], dtype=np.float64)
                vectors[j] = np.stack([np.asarray(v, dtype=np.float32) for _, _, v in found])
        return {"i": batch["i"], "duration": batch["duration"], "error": np.asarray(errors, dtype=object),
                "embedding": _ragged(emb), "tokens": _ragged(tokens), "kind": np.asarray([kind] * n, dtype=object),
                "spans": _ragged(spans), "vectors": _ragged(vectors)}


def _ragged(arrays: list[np.ndarray]) -> np.ndarray:
    out = np.empty(len(arrays), dtype=object)
    out[:] = arrays
    return out


def _import_from(folder: str) -> Any:
    """A worker setup hook that makes ``import actionclip`` find the package in ``folder``.

    Ray puts the driver's working directory first on every worker's ``sys.path`` (and does so after
    the setup hook runs), so a run started from a folder holding an ``actionclip/`` directory (the
    folder a repository was cloned into, a checkout's root) would have its workers import that
    directory instead of the package the driver runs. A meta-path finder is consulted before
    ``sys.path``; it answers for the top-level name only (submodules follow the package's own
    ``__path__``) and leaves every other import, and the working directory, as Ray set them.
    Defined inside a function so Ray pickles it by value: unpickling it imports nothing of ours."""

    def pin_actionclip() -> None:
        import importlib.machinery
        import sys

        class PinnedActionCLIP:
            @staticmethod
            def find_spec(name: str, path: Any = None, target: Any = None) -> Any:
                if name != "actionclip":
                    return None
                return importlib.machinery.PathFinder.find_spec(name, [folder])  # None: not on this node

        sys.meta_path.insert(0, PinnedActionCLIP)

    return pin_actionclip


def _runtime_env(address: str | None) -> dict[str, Any]:
    """The job's runtime environment: workers import the driver's own ``actionclip``.

    Not for Ray Client (``ray://``: the client's directory is not put on the workers' path) nor when
    the job already has a setup hook (``ray job submit`` with one: Ray refuses a second)."""
    import json

    import actionclip

    submitted = os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")  # set by Ray's job manager for the entrypoint
    try:
        hooked = "worker_process_setup_hook" in (json.loads(submitted).get("runtime_env") or {}) if submitted else False
    except (ValueError, AttributeError):
        hooked = False
    if (address or "").startswith("ray://") or hooked or os.environ.get("__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"):
        return {}
    folder = os.path.dirname(os.path.dirname(os.path.abspath(actionclip.__file__)))
    return {"worker_process_setup_hook": _import_from(folder)}


def _connect(ray: Any, address: str | None) -> bool:
    """Join or start Ray; True when this call started it (and so must stop it)."""
    from actionclip.chatter import library_log_level

    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=library_log_level(),
                 configure_logging=True, runtime_env=_runtime_env(address))
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise UsageError(f"--ray {address or ''}: cannot start or reach Ray ({' '.join(str(exc).split())[:200]})") from None
    return True


def encode_videos_ray(
    model: VideoTextModel | str | os.PathLike,
    items: Iterable[Any],
    prepare: Any,
    *,
    batch_size: int | None = None,
    address: str | None = None,
    dtype: str | None = None,
    frames: int | None = None,
    moments: Any = None,
) -> Iterator[tuple[list[Any], Any]]:
    """Decode in Ray tasks, encode in a Ray actor pool; yields what
    :func:`actionclip.pipeline.encode_videos` yields, in input order (see the module notes).

    ``model``: a registry name or checkpoint path each actor loads (``dtype``, ``frames`` as in
    :func:`actionclip.load`), or a model object shipped to the actors. ``items`` carry what
    ``prepare`` reads (a path, a :class:`~actionclip.video.inputs.VideoInput`, ...); an item with a
    ``duration`` attribute gets the decoded video's duration back. ``moments``: a picklable
    ``(model, item) -> [(start, end, vector), ...]`` the encoder actors run on each video they
    encoded; its result is set as ``item.moments`` (an error in it fails that video)."""
    from actionclip.model.scoring import VideoFeatures

    ray = require_ray()
    items = list(items)
    if not items:
        return
    started = _connect(ray, address)
    try:
        import logging

        import ray.data

        from actionclip.chatter import library_log_level, verbose

        logging.getLogger("ray.data").setLevel(library_log_level())  # per-dataset INFO lines drown the results
        context = ray.data.DataContext.get_current()
        if not verbose():
            context.enable_progress_bars = False  # the caller shows its own
        context.execution_options.preserve_order = True
        gpus = int(ray.cluster_resources().get("GPU", 0))
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        batch = batch_size or (GPU_BATCH if gpus else CPU_BATCH)
        actors = gpus if gpus else max(1, cpus // 2)  # the other half of the CPUs decode
        rows = [{"i": i, "item": pickle.dumps(item)} for i, item in enumerate(items)]
        ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), max(cpus * 4, 1)))
        # Decoders ask for half a CPU, encoders for a whole one (or a GPU): different resources keep
        # Ray from fusing the two steps into the actors, so decoding stays in its own CPU tasks.
        ds = ds.map(_Decode(prepare), num_cpus=0.5)
        ds = ds.map_batches(_Encode, fn_constructor_args=(model, dtype, frames, bool(gpus), moments), batch_size=batch,
                            batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
                            num_gpus=1 if gpus else 0, num_cpus=1)
        for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
            done, parts = [], []
            for i, error, duration, emb, tokens, kind, spans, vectors in zip(
                    out["i"], out["error"], out["duration"], out["embedding"], out["tokens"], out["kind"],
                    out["spans"], out["vectors"]):
                item = items[int(i)]
                if hasattr(item, "duration"):
                    item.duration = float(duration)
                if error:
                    yield [item], VideoError(str(error))
                    continue
                if moments is not None:
                    item.moments = [(float(s), float(e), v) for (s, e), v in zip(np.asarray(spans), np.asarray(vectors))]
                done.append(item)
                parts.append(VideoFeatures(np.asarray(emb), np.asarray(tokens) if tokens.size else None)
                             if kind == "VideoFeatures" else np.asarray(emb))
            if done:
                from actionclip.model.scoring import stack_features

                yield done, stack_features(parts)
    finally:
        if started:
            ray.shutdown()
