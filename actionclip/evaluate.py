"""Accuracy of a model on a labeled dataset: top-1/top-5, per class, confusion, every prediction.

Videos are decoded and preprocessed ahead in parallel workers (:func:`actionclip.pipeline.prefetch`)
while the model encodes earlier ones; the candidate labels are the dataset's class texts inside the
prompt templates, embedded once. Scoring is the original test protocol (mean over templates and
views of the softmax over labels). A video that cannot be read is reported in ``failures`` and left
out of every figure, never stopping the run.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from actionclip.datasets import Sample, VideoDataset, read_sample_frames, sample_length
from actionclip.errors import UsageError

__all__ = ["EvalReport", "evaluate", "prepare_views", "save_confusion_png"]


@dataclasses.dataclass
class EvalReport:
    """The result of :func:`evaluate`. Accuracies are fractions in [0, 1]."""

    classes: list[str]
    predictions: list[dict[str, Any]]
    failures: list[dict[str, str]]
    confusion: np.ndarray  # [C, C] counts: row = true class, column = predicted class
    settings: dict[str, Any]

    @property
    def evaluated(self) -> int:
        return len(self.predictions)

    @property
    def top1(self) -> float:
        return float(np.mean([p["correct"] for p in self.predictions])) if self.predictions else 0.0

    @property
    def top5(self) -> float:
        return float(np.mean([p["rank"] <= 5 for p in self.predictions])) if self.predictions else 0.0

    def per_class(self) -> list[dict[str, Any]]:
        """Accuracy of each class that has clips (``accuracy`` is None for classes without)."""
        totals = self.confusion.sum(axis=1)
        return [{"class": c, "clips": int(totals[i]),
                 "correct": int(self.confusion[i, i]),
                 "accuracy": float(self.confusion[i, i] / totals[i]) if totals[i] else None}
                for i, c in enumerate(self.classes)]

    @property
    def mean_class_accuracy(self) -> float:
        accs = [c["accuracy"] for c in self.per_class() if c["accuracy"] is not None]
        return float(np.mean(accs)) if accs else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": {"clips": self.evaluated + len(self.failures), "evaluated": self.evaluated,
                        "failed": len(self.failures), "top1": self.top1, "top5": self.top5,
                        "mean_class_accuracy": self.mean_class_accuracy, "classes": len(self.classes)},
            "settings": self.settings,
            "per_class": self.per_class(),
            "confusion": self.confusion.tolist(),
            "classes": self.classes,
            "predictions": self.predictions,
            "failures": self.failures,
        }

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write the whole report as JSON, atomically."""
        data = json.dumps(self.to_dict(), indent=1, ensure_ascii=False).encode("utf-8")
        return _atomic_write(Path(path), lambda tmp: tmp.write_bytes(data))

    def save_confusion(self, path: str | os.PathLike) -> Path:
        return save_confusion_png(self.confusion, self.classes, path, title=self._title())

    def _title(self) -> str:
        return (f"{self.settings.get('model', 'model')} on {self.settings.get('dataset', 'dataset')}: "
                f"top-1 {100 * self.top1:.1f}%, mean class {100 * self.mean_class_accuracy:.1f}%")

    def summary(self) -> str:
        lines = [f"clips evaluated: {self.evaluated} (failed: {len(self.failures)})",
                 f"top-1 accuracy:  {100 * self.top1:6.2f}%",
                 f"top-5 accuracy:  {100 * self.top5:6.2f}%",
                 f"mean class acc.: {100 * self.mean_class_accuracy:6.2f}%"]
        return "\n".join(lines)


def _atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """``write(tmp)`` into a temporary name beside ``path``, then rename it into place; an unwritable
    folder or a full disk is a one-line error naming ``path``, never a half-written file."""
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write it ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_confusion_png(confusion: np.ndarray, classes: Sequence[str], path: str | os.PathLike,
                       title: str = "") -> Path:
    """Row-normalised confusion matrix as a PNG (class names on the axes up to 60 classes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    n = len(classes)
    rows = confusion.sum(axis=1, keepdims=True)
    norm = np.divide(confusion, rows, out=np.zeros(confusion.shape, dtype=float), where=rows > 0)
    side = min(30.0, max(5.0, 0.22 * n + 3))
    fig = Figure(figsize=(side, side), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if n <= 60:
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels(classes, rotation=90, fontsize=7)
        ax.set_yticklabels(classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def prepare_views(model: Any, sample: Sample, frames: int, clips: int = 1, crops: int = 1):
    """Normalised views ``[clips * crops, T, 3, R, R]`` of one sample (test-protocol sampling)."""
    if not sample.path.is_dir() and not sample.num_frames:
        return model.prepare_video(str(sample.path), frames=frames, clips=clips, crops=crops)
    import torch

    from actionclip.video import sample_indices

    n = sample_length(sample)
    views = [model.prepare_video(read_sample_frames(sample, sample_indices(n, frames, "center", clip=c, clips=clips)),
                                 frames=frames, crops=crops) for c in range(clips)]
    return torch.cat(views)


@dataclasses.dataclass(frozen=True)
class _ViewMaker:
    """What decoding a sample needs of the model, small enough to send to worker processes
    (``ActionCLIP.prepare_video`` reads only these two attributes)."""

    input_resolution: int
    num_frames: int

    def prepare_video(self, *args: Any, **kwargs: Any) -> Any:
        from actionclip.model import ActionCLIP

        return ActionCLIP.prepare_video(self, *args, **kwargs)  # type: ignore[arg-type]


def evaluate(
    model: Any,
    dataset: VideoDataset,
    *,
    templates: Sequence[str] | str | None = None,
    frames: int | None = None,
    clips: int = 1,
    crops: int = 1,
    batch_size: int | None = None,
    workers: int | None = None,
    processes: bool = False,
    progress: bool = True,
    on_failure: Callable[[Sample, BaseException], None] | None = None,
    settings: dict[str, Any] | None = None,
) -> EvalReport:
    """Classify every clip of ``dataset`` among its class texts and collect the figures.

    Args:
        model: a loaded :class:`actionclip.ActionCLIP`.
        dataset: the clips; ``dataset.classes`` are the candidate labels.
        templates: prompt templates (default: the 16 of ActionCLIP).
        frames: frames per view (default: the model's).
        clips, crops: temporal and spatial views per video, averaged (multi-view testing).
        batch_size: videos encoded together (default 1 on CPU, 8 on CUDA).
        workers: decoding threads (default: up to 4; 0 decodes in the calling thread). PyAV
            and torch release the GIL while decoding and resizing, so threads run in parallel.
        processes: decode in worker processes instead of threads (for machines with many cores,
            where Python-side work in the threads would contend for the GIL).
        progress: show a progress bar on stderr.
        on_failure: called with (sample, error) for each video that fails (default: print a line).
        settings: extra entries for the report's ``settings``.
    """
    import torch

    from actionclip.pipeline import default_workers, prefetch

    frames = frames or model.num_frames
    workers = default_workers() if workers is None else workers
    batch_size = batch_size or (8 if model.device.type == "cuda" else 1)
    label_emb = model.encode_labels(dataset.classes, templates)
    report_failure = on_failure or (lambda s, e: print(f"actionclip: error: {s.path}: {e}", file=sys.stderr))
    num_classes = len(dataset.classes)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    predictions: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    k = min(5, num_classes)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(dataset), desc="eval", unit="video", file=sys.stderr, leave=False)

    # Worker processes get a picklable stand-in for the model; threads share the model itself.
    view_maker = _ViewMaker(model.input_resolution, model.num_frames) if processes else model
    prepare = functools.partial(prepare_views, view_maker, frames=frames, clips=clips, crops=crops)

    def flush(batch: list[tuple[Sample, Any]]) -> None:
        if not batch:
            return
        views = batch[0][1].shape[0]
        pixels = torch.cat([v for _, v in batch]).to(model.device)
        with torch.inference_mode():
            emb = model.encode_video(pixels).view(len(batch), views, -1)
            probs = model.probabilities(emb, label_emb).cpu()
        for (sample, _), p in zip(batch, probs):
            order = torch.argsort(p, descending=True).tolist()
            pred = order[0]
            confusion[sample.label, pred] += 1
            predictions.append({
                "path": str(sample.path),
                "label": dataset.classes[sample.label],
                "label_index": sample.label,
                "prediction": dataset.classes[pred],
                "prediction_index": pred,
                "correct": pred == sample.label,
                "rank": order.index(sample.label) + 1,
                "label_probability": float(p[sample.label]),
                "top5": [[dataset.classes[i], float(p[i])] for i in order[:k]],
            })
        batch.clear()

    pending: list[tuple[Sample, Any]] = []
    try:
        for sample, result in prefetch(prepare, list(dataset.samples), workers=workers, processes=processes):
            if isinstance(result, BaseException):
                failures.append({"path": str(sample.path), "error": str(result) or type(result).__name__})
                report_failure(sample, result)
            else:
                pending.append((sample, result))
                if len(pending) >= batch_size:
                    flush(pending)
            if bar is not None:
                bar.update(1)
        flush(pending)
    finally:
        if bar is not None:
            bar.close()
    info = {"model": getattr(model, "name", None), "dataset": dataset.source, "frames": frames, "clips": clips,
            "crops": crops, "templates": "default" if templates is None else list(templates)
            if not isinstance(templates, str) else [templates]}
    info.update(settings or {})
    return EvalReport(list(dataset.classes), predictions, failures, confusion, info)
