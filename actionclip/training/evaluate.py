"""Accuracy of a model on a labeled dataset: top-1/top-5, per class, confusion, every prediction.

Videos are decoded and preprocessed ahead in parallel workers while the model encodes earlier ones
(:func:`actionclip.pipeline.encode_videos`); the candidate labels are the dataset's class texts inside the
prompt templates, embedded once. Scoring is the original test protocol (mean over templates and
views of the softmax over labels). A video that cannot be read is reported in ``failures`` and left
out of every figure, never stopping the run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from actionclip.files import write_text, write_with
from actionclip.pipeline import PrepareViews
from actionclip.training.datasets import Sample, VideoDataset, read_sample_frames, sample_length
from actionclip.video.sampling import clip_indices
from actionclip.video.views import VideoViews

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel

__all__ = ["EvalReport", "evaluate", "SampleViews", "save_confusion_png"]


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
        return write_text(path, json.dumps(self.to_dict(), indent=1, ensure_ascii=False))

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
    return write_with(path, lambda tmp: fig.savefig(tmp, format="png"))


@dataclasses.dataclass(frozen=True)
class SampleViews(PrepareViews):
    """One dataset sample -> uint8 crops ``[clips * crops, T, 3, R, R]`` (test-protocol sampling;
    :func:`actionclip.pipeline.encode_videos` normalises them where the model runs); picklable, for
    decoding in worker processes. A sample that is a video file may be decoded by NVDEC instead
    (:meth:`video_of`); a folder of frames, or a list file's frame count, only here."""

    views: VideoViews

    def video_of(self, sample: Any) -> str | None:
        return None if sample.path.is_dir() or sample.num_frames else str(sample.path)

    def __call__(self, sample: Any) -> Any:
        if self.video_of(sample) is not None:
            return super().__call__(sample)
        indices = clip_indices(sample_length(sample), self.frames, clips=self.clips, mode=self.views.sampling)
        raw = read_sample_frames(sample, indices.ravel().tolist())
        return self.views.pixels(raw.reshape(*indices.shape, *raw.shape[1:]), self.crops, normalize=False)


def evaluate(
    model: VideoTextModel,
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
        model: a model from :func:`actionclip.load` (or an ONNX export).
        dataset: the clips; ``dataset.classes`` are the candidate labels.
        templates: prompt templates (default: the model's own).
        frames: frames per view (default: the model's).
        clips, crops: temporal and spatial views per video, averaged (multi-view testing).
        batch_size: videos encoded together (default 1 on CPU, 8 on CUDA).
        workers: decode worker processes (default: one per core; 0 decodes in the calling thread;
            :mod:`actionclip.workers`).
        processes: ignored, kept so that older callers run: decoding always uses worker processes.
        progress: show a progress bar on stderr.
        on_failure: called with (sample, error) for each video that fails (default: print a line).
        settings: extra entries for the report's ``settings``.
    """
    from actionclip.pipeline import encode_videos

    frames = frames or model.num_frames
    batch_size = batch_size or (8 if model.on_gpu else 1)
    from actionclip.workflows.label_cache import encode_labels

    label_emb = encode_labels(model, dataset.classes, templates)  # cached on disk (not for a model in training)
    from actionclip.results import error_line

    report_failure = on_failure or (lambda s, e: print(error_line(str(s.path), e), file=sys.stderr))
    num_classes = len(dataset.classes)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    predictions: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    k = min(5, num_classes)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(dataset), desc="eval", unit="video", file=sys.stderr, leave=False,
                   disable=not sys.stderr.isatty())  # a log file gets the results, not bar redraws

    prepare = SampleViews(model.views, frames, clips, crops)
    try:
        for samples, features in encode_videos(model, list(dataset.samples), prepare, batch_size=batch_size,
                                               workers=workers):
            if isinstance(features, BaseException):
                for sample in samples:
                    failures.append({"path": str(sample.path), "error": str(features) or type(features).__name__})
                    report_failure(sample, features)
            else:
                probs = model.ops.to_numpy(model.probabilities(features, label_emb))
                for sample, p in zip(samples, probs):
                    order = np.argsort(-p, kind="stable").tolist()
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
            if bar is not None:
                bar.update(len(samples))
    finally:
        if bar is not None:
            bar.close()
    info = {"model": model.name, "dataset": dataset.source, "frames": frames, "clips": clips,
            "crops": crops, "templates": "default" if templates is None else list(templates)
            if not isinstance(templates, str) else [templates]}
    info.update(settings or {})
    return EvalReport(list(dataset.classes), predictions, failures, confusion, info)
