"""The open-vocabulary protocol: zero-shot accuracy on unseen classes, over seeded random splits.

Papers on open-vocabulary action recognition (ER-ZSAR, ActionCLIP's zero-shot tables, X-CLIP,
Open-VCLIP...) split a dataset's classes into seen and unseen ones, 75/25 or 50/50, draw 10 such
splits at random, score each video against the unseen classes only, and report the mean and the
standard deviation over the splits. This module draws the splits with
:func:`actionclip.training.datasets.split_classes` (the base/novel split ``train`` and ``eval`` use,
seeded ``seed``, ``seed + 1``, ...), encodes every video once, scores every split from the stored
logits, and writes the split files beside the report so a run can be repeated
(``actionclip eval DATA --novel splits/75-25/split01.unseen.txt`` gives that split's figures again).

Standard deviation: over the splits, population form (``ddof=0``, numpy's default).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from actionclip.errors import UsageError
from actionclip.files import write_text

__all__ = ["PROTOCOLS", "class_splits", "score_split", "OpenVocabularyReport", "open_vocabulary_splits",
           "evaluate_open_vocabulary"]

#: protocol name -> fraction of the classes held out as unseen
PROTOCOLS = {"75/25": 0.25, "50/50": 0.5}


def class_splits(dataset: Any, unseen_fraction: float, *, splits: int = 10, seed: int = 0
                 ) -> list[tuple[int, list[str], list[str]]]:
    """``[(seed, seen class names, unseen class names)]`` for ``splits`` seeds from ``seed``."""
    from actionclip.training.datasets import split_classes

    if splits < 1:
        raise UsageError(f"splits must be at least 1, got {splits}")
    out = []
    for s in range(seed, seed + splits):
        seen, unseen = split_classes(dataset, novel_fraction=unseen_fraction, seed=s)
        out.append((s, list(seen.class_names), list(unseen.class_names)))
    return out


open_vocabulary_splits = class_splits


def score_split(logits: np.ndarray, labels: np.ndarray, candidates: Sequence[int]) -> dict[str, float]:
    """Top-1, top-5 and mean class accuracy of the clips whose class is in ``candidates``, each scored
    against ``candidates`` only: softmax over them per template and view, then the mean.

    ``logits`` is ``[N, V, K, C]`` over all C classes, ``labels`` ``[N]`` class indices.
    """
    from actionclip.model.scoring import probabilities

    cand = np.asarray(candidates, dtype=np.int64)
    rows = np.nonzero(np.isin(labels, cand))[0]
    if not len(rows):
        raise UsageError("no clip of the unseen classes to score")
    probs = np.asarray(probabilities(np.ascontiguousarray(logits[rows][..., cand])))  # [n, len(cand)]
    position = {int(c): i for i, c in enumerate(cand)}
    truth = np.array([position[int(l)] for l in labels[rows]])
    order = np.argsort(-probs, axis=1, kind="stable")
    top1 = order[:, 0] == truth
    top5 = (order[:, : min(5, len(cand))] == truth[:, None]).any(axis=1)
    per_class = [top1[truth == i].mean() for i in range(len(cand)) if np.any(truth == i)]
    return {"top1": float(top1.mean()), "top5": float(top5.mean()), "mean_class": float(np.mean(per_class)),
            "clips": int(len(rows)), "classes": int(len(cand))}


@dataclass
class OpenVocabularyReport:
    """Per protocol, every split's figures and their mean and std (fractions, not percent)."""

    dataset: str
    settings: dict[str, Any]
    splits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        out = {}
        for protocol, rows in self.splits.items():
            out[protocol] = {k: {"mean": float(np.mean([r[k] for r in rows])), "std": float(np.std([r[k] for r in rows]))}
                             for k in ("top1", "top5", "mean_class")}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "settings": self.settings, "summary": self.summary(),
                "splits": self.splits, "failures": self.failures}

    def table(self) -> str:
        lines = [f"{'protocol':<9} {'splits':>6}  {'top-1 (%)':>15}  {'top-5 (%)':>15}  {'mean class (%)':>15}"]
        for protocol, s in self.summary().items():
            cells = [f"{100 * s[k]['mean']:6.2f} ± {100 * s[k]['std']:5.2f}" for k in ("top1", "top5", "mean_class")]
            lines.append(f"{protocol:<9} {len(self.splits[protocol]):>6}  " + "  ".join(f"{c:>15}" for c in cells))
        return "\n".join(lines)

    def save(self, folder: str | os.PathLike) -> dict[str, Path]:
        """``report.json`` and, per protocol and split, ``splits/<75-25>/splitNN.seen.txt`` and
        ``.unseen.txt`` (class names, one per line), each written atomically."""
        import json

        folder = Path(folder)
        paths = {"report": folder / "report.json"}
        for protocol, rows in self.splits.items():
            for n, row in enumerate(rows, 1):
                for side in ("seen", "unseen"):
                    p = folder / "splits" / protocol.replace("/", "-") / f"split{n:02d}.{side}.txt"
                    write_text(p, "".join(f"{name}\n" for name in row[side]))
                    row.setdefault("files", {})[side] = str(p.relative_to(folder))
        write_text(paths["report"], json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return paths


def _encode_logits(model: Any, dataset: Any, *, templates: Any, frames: int | None, clips: int, crops: int,
                   batch_size: int | None, workers: int | None, on_failure: Callable[[Any, BaseException], None]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Every clip encoded once and scored against every class: ``(logits [N, V, K, C], labels [N])``."""
    from actionclip.model.label_cache import encode_labels
    from actionclip.pipeline import encode_videos
    from actionclip.training.evaluate import SampleViews

    frames = frames or model.num_frames
    batch_size = batch_size or (8 if "cuda" in str(getattr(model, "device", "")) else 1)
    label_emb = encode_labels(model, dataset.classes, templates)
    logits, labels = [], []
    for samples, features in encode_videos(model, list(dataset.samples), SampleViews(model.views, frames, clips, crops),
                                           batch_size=batch_size, workers=workers):
        if isinstance(features, BaseException):
            for sample in samples:
                on_failure(sample, features)
            continue
        with model._inference():
            logits.append(np.asarray(model._ops.to_numpy(model.logits(features, label_emb)), dtype=np.float32))
        labels += [s.label for s in samples]
    if not logits:
        raise UsageError(f"{dataset.source}: no clip could be encoded")
    return np.concatenate(logits), np.asarray(labels)


def evaluate_open_vocabulary(model: Any, dataset: Any, *, protocols: Sequence[str] = ("75/25", "50/50"),
                             splits: int = 10, seed: int = 0, templates: Any = None, frames: int | None = None,
                             clips: int = 1, crops: int = 1, batch_size: int | None = None,
                             workers: int | None = None, settings: dict[str, Any] | None = None
                             ) -> OpenVocabularyReport:
    """Zero-shot accuracy on the unseen classes of ``splits`` seeded splits per protocol.

    Args:
        model: a model from :func:`actionclip.load`.
        dataset: a :class:`~actionclip.training.datasets.VideoDataset`.
        protocols: names in :data:`PROTOCOLS` (``"75/25"``, ``"50/50"``).
        splits, seed: splits use seeds ``seed .. seed + splits - 1``.
        templates, frames, clips, crops, batch_size, workers: as :func:`actionclip.training.evaluate.evaluate`.
    """
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise UsageError(f"protocols: unknown {unknown[0]!r} (known: {', '.join(PROTOCOLS)})")
    failures: list[dict[str, str]] = []

    def on_failure(sample: Any, exc: BaseException) -> None:
        failures.append({"path": str(sample.path), "error": str(exc) or type(exc).__name__})
        print(f"actionclip: error: {sample.path}: {exc}", file=sys.stderr)

    drawn = {p: class_splits(dataset, PROTOCOLS[p], splits=splits, seed=seed) for p in protocols}  # fail early
    logits, labels = _encode_logits(model, dataset, templates=templates, frames=frames, clips=clips, crops=crops,
                                    batch_size=batch_size, workers=workers, on_failure=on_failure)
    index = {name: i for i, name in enumerate(dataset.class_names)}
    info = {"protocols": list(protocols), "splits": splits, "seed": seed, "std": "population (ddof=0)",
            "frames": frames or model.num_frames, "clips": clips, "crops": crops,
            "templates": "default" if templates is None else list(templates)}
    info.update(settings or {})
    report = OpenVocabularyReport(str(dataset.source), info, failures=failures)
    for protocol, rows in drawn.items():
        report.splits[protocol] = []
        for s, seen, unseen in rows:
            figures = score_split(logits, labels, [index[n] for n in unseen])
            report.splits[protocol].append({"seed": s, "seen": seen, "unseen": unseen, **figures})
    return report
