"""A timeline at a glance: one lane per label over time, its score curve and its detected segments.

Drawn with matplotlib's Agg canvas directly (no pyplot, no global backend switch, no display needed),
imported only when a plot is made. With many labels only the ``max_lanes`` most relevant are drawn
(labels with segments first, then by peak score); the title says how many were left out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BACKGROUND_COLOR = "#bbbbbb"


@dataclass
class PlotLayout:
    """Where things landed in the PNG: pixel boxes ``(left, top, right, bottom)``, origin top-left."""

    path: Path
    size: tuple[int, int]  #: (width, height) in pixels
    lanes: dict[str, tuple[int, int, int, int]]  #: label -> its lane
    colors: dict[str, str]  #: label -> its colour (hex)
    top_strip: tuple[int, int, int, int] | None  #: the "best label per window" strip


def _format_time(seconds: float, _pos: Any = None) -> str:
    seconds = max(0.0, float(seconds))
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def choose_lanes(result: Any, max_lanes: int) -> list[int]:
    """Label indices to draw: those with segments first (in label order), then by peak score."""
    labels = list(result.labels)
    with_segments = {s.label for s in result.segments}
    peaks = result.decision_scores.max(axis=0) if len(result.starts) else np.zeros(len(labels))
    order = sorted(range(len(labels)), key=lambda i: (labels[i] not in with_segments, -peaks[i], i))
    return sorted(order[:max_lanes])


def plot_timeline(
    result: Any,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    width: float = 12.0,
    lane_height: float = 0.8,
    max_lanes: int = 20,
    dpi: int = 100,
) -> PlotLayout:
    """Draw ``result`` (a :class:`actionclip.temporal.timeline.TimelineResult`) to a PNG at ``path``.

    Each lane shows the label's decision score (0-1) as a filled curve, the threshold as a dashed
    line and the detected segments as solid bars; the strip on top shows the best label of each window
    (grey where it is background). Written to a temporary file and renamed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    path = Path(path)
    lanes = choose_lanes(result, max_lanes)
    labels = [result.labels[i] for i in lanes]
    scores = result.decision_scores
    threshold = float(result.settings.get("threshold", 0.5))
    centres = (result.starts + result.ends) / 2
    duration = max(result.duration, float(result.ends[-1]) if len(result.ends) else 1.0)
    palette = _palette(len(labels))
    colors = dict(zip(labels, palette))

    fig = Figure(figsize=(width, 0.9 + lane_height * (len(labels) + 0.5)), dpi=dpi)
    FigureCanvasAgg(fig)
    heights = [0.35] + [1.0] * len(labels)
    axes = fig.subplots(len(labels) + 1, 1, sharex=True, gridspec_kw={"height_ratios": heights, "hspace": 0.12})
    strip, lane_axes = axes[0], list(axes[1:])

    # Top strip: best label per window, or background.
    from actionclip.temporal.segments import top_labels

    half = float(result.settings.get("stride", 1.0)) / 2
    for centre, (top, _) in zip(centres, top_labels(scores, result.labels, threshold)):
        strip.axvspan(centre - half, centre + half, color=colors.get(top, BACKGROUND_COLOR), lw=0)
    strip.set_yticks([])
    strip.set_ylabel("best", rotation=0, ha="right", va="center")

    for ax, li, label in zip(lane_axes, lanes, labels):
        color = colors[label]
        ax.fill_between(centres, scores[:, li], color=color, alpha=0.35, lw=0, step="mid")
        ax.plot(centres, scores[:, li], color=color, lw=1.0, drawstyle="steps-mid")
        ax.axhline(threshold, color="#444444", lw=0.8, ls="--")
        for seg in result.segments:
            if seg.label == label:
                ax.axvspan(seg.start, seg.end, ymin=0.0, ymax=0.12, color=color, lw=0)
                ax.axvspan(seg.start, seg.end, color=color, alpha=0.12, lw=0)
        ax.set_ylim(0, 1.02)
        ax.set_yticks([0, threshold, 1])
        ax.set_yticklabels(["0", f"{threshold:g}", "1"], fontsize=7)
        ax.set_ylabel(label if len(label) <= 28 else label[:27] + "…", rotation=0, ha="right", va="center")
        ax.grid(axis="x", color="#dddddd", lw=0.6)
    last = lane_axes[-1] if lane_axes else strip
    last.set_xlim(0, duration)
    last.xaxis.set_major_formatter(FuncFormatter(_format_time))
    last.set_xlabel("time")
    shown = "" if len(labels) == len(result.labels) else f" ({len(labels)} of {len(result.labels)} labels)"
    kind = result.settings.get("score", "independent")
    fig.suptitle(title or f"{Path(result.video).name}: {kind} score per window{shown}", fontsize=10)
    fig.subplots_adjust(left=0.2, right=0.98, top=1 - 0.45 / fig.get_figheight(), bottom=0.6 / fig.get_figheight())

    fig.canvas.draw()
    w_px, h_px = fig.canvas.get_width_height()

    def box(ax: Any) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = ax.get_window_extent().extents  # display coords, origin bottom-left
        return int(round(x0)), int(round(h_px - y1)), int(round(x1)), int(round(h_px - y0))

    layout = PlotLayout(path, (w_px, h_px), {l: box(ax) for l, ax in zip(labels, lane_axes)}, colors, box(strip))
    from actionclip.files import write_with

    write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    return layout


def _palette(n: int) -> list[str]:
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [to_hex(cmap(i % cmap.N)) for i in range(n)]
