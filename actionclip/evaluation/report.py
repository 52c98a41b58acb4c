"""Detection and retrieval results as people read them: text tables, a precision-recall plot, JSON files.

The evaluation modules compute numbers; this one lays them out, once, for the CLI commands and for
the reports written beside a run. Plots use matplotlib's Agg canvas (imported only when a plot is
made) and every file goes through :mod:`actionclip.files`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from actionclip.evaluation.detection import DetectionResult
from actionclip.files import write_text, write_with

__all__ = ["detection_table", "retrieval_table", "save_json", "plot_precision_recall"]


def detection_table(result: DetectionResult, *, per_class: bool = True) -> str:
    """mAP per threshold and the average, then AP per class (in percent), then the notes."""
    heads = [f"{t:.2f}" for t in result.tiou]
    lines = [f"{result.protocol} detection: {len(result.labels)} classes, "
             f"{sum(result.instances.values())} instances, {sum(result.predictions.values())} predictions"]
    width = max([len("mAP"), len("average mAP")] + [len(l) for l in result.labels]) if per_class else 11
    lines.append(f"{'tIoU':<{width}}  " + "  ".join(f"{h:>6}" for h in heads) + "     avg")
    lines.append(f"{'mAP':<{width}}  " + "  ".join(f"{100 * m:6.2f}" for m in result.mAP)
                 + f"  {100 * result.average_mAP:6.2f}")
    if per_class:
        lines.append("")
        for c, label in enumerate(result.labels):
            aps = result.ap[:, c]
            lines.append(f"{label:<{width}}  " + "  ".join(f"{100 * a:6.2f}" for a in aps)
                         + f"  {100 * aps.mean():6.2f}")
    for note in result.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def retrieval_table(metrics: Mapping[str, Mapping[str, float]]) -> str:
    """One row per direction (``text_to_video``, ``video_to_text``): R@1/5/10, median and mean rank."""
    lines = [f"{'direction':<14} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MdR':>6} {'MnR':>7}  queries"]
    for name, m in metrics.items():
        if not isinstance(m, Mapping) or "R1" not in m:
            continue
        lines.append(f"{name.replace('_', ' '):<14} {m['R1']:6.2f} {m['R5']:6.2f} {m['R10']:6.2f} "
                     f"{m['MedianR']:6.1f} {m['MeanR']:7.2f}  {m.get('queries', '')}")
    return "\n".join(lines)


def save_json(path: str | os.PathLike, doc: Any) -> Path:
    """Write a report document as indented JSON, atomically."""
    return write_text(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def plot_precision_recall(result: DetectionResult, path: str | os.PathLike, *, tiou: float | None = None,
                          max_classes: int = 12) -> Path:
    """Precision-recall curves at one threshold (default: the first) as a PNG.

    Needs ``result.curves`` (``curves=True`` when evaluating). Classes with predictions are drawn, at
    most ``max_classes`` of them (highest AP first); the title says how many were left out.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if result.curves is None:
        raise ValueError("result has no curves: evaluate with curves=True")
    t = 0 if tiou is None else int(np.argmin(np.abs(np.asarray(result.tiou) - tiou)))
    scored = [l for l in result.labels if result.curves[l][0].shape[1]]
    labels = sorted(scored, key=lambda l: (-result.ap[t, result.labels.index(l)], -result.instances[l]))[:max_classes]
    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label in labels:
        precision, recall = result.curves[label]
        c = result.labels.index(label)
        ax.step(np.concatenate([[0.0], recall[t]]), np.concatenate([[precision[t][0]], precision[t]]),
                where="post", label=f"{label} (AP {100 * result.ap[t, c]:.1f})")
    left_out = len(result.labels) - len(labels)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"{result.protocol}: tIoU {result.tiou[t]:.2f}, mAP {100 * result.mAP[t]:.1f}"
                 + (f" ({left_out} classes not drawn)" if left_out else ""))
    if labels:
        ax.legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    return write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
