"""Segments from window scores (pure numpy): where each label's score stays above a threshold.

Per label: centred moving-average smoothing, hysteresis thresholding (enter at ``threshold``, stay
while above ``threshold - hysteresis``), merging of gaps shorter than ``min_gap`` and dropping of
segments shorter than ``min_duration``. A window whose best score is below ``threshold`` is
*background*: no label is forced on it.

Segment edges are placed half-way between the centres of the last window below and the first window
above the threshold: for a clean cut, where half a window's frames change, an edge lands within half
a stride plus half a frame step of the cut, i.e. within one stride.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["Segment", "smooth_scores", "hysteresis_runs", "merge_runs", "find_segments", "top_labels"]


@dataclass
class Segment:
    """A stretch of time where one label's score stayed above the threshold (with hysteresis)."""

    label: str
    start: float
    end: float
    mean_score: float
    peak_score: float
    peak_time: float
    windows: int

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["duration"] = self.duration
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


def smooth_scores(scores: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over ``width`` windows along axis 0; edges average what exists.

    ``width`` is made odd so the filter does not shift edges in time.
    """
    x = np.asarray(scores, dtype=np.float64)
    width = max(1, int(width))
    if width % 2 == 0:
        width += 1
    if width == 1 or x.shape[0] == 0:
        return x.copy()
    half = width // 2
    pad = [(half, half)] + [(0, 0)] * (x.ndim - 1)
    padded = np.pad(x, pad)
    counts = np.pad(np.ones(x.shape[0]), (half, half))
    csum = np.cumsum(np.concatenate([np.zeros((1,) + x.shape[1:]), padded]), axis=0)
    ccount = np.cumsum(np.concatenate([[0.0], counts]))
    total = csum[width:] - csum[:-width]
    n = (ccount[width:] - ccount[:-width]).reshape((-1,) + (1,) * (x.ndim - 1))
    return total / n


def hysteresis_runs(x: Sequence[float], high: float, low: float) -> list[tuple[int, int]]:
    """Runs ``(first, last)`` (inclusive) that start at ``x >= high`` and last while ``x >= low``.

    A run may extend backwards too: the samples before its first crossing of ``high`` that are
    already ``>= low`` belong to it, so the filter is symmetric in time.
    """
    if low > high:
        raise ValueError("hysteresis: low threshold above high threshold")
    x = np.asarray(x, dtype=np.float64)
    above_low = x >= low
    runs: list[tuple[int, int]] = []
    i, n = 0, len(x)
    while i < n:
        if not above_low[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and above_low[j + 1]:
            j += 1
        if (x[i : j + 1] >= high).any():
            runs.append((i, j))
        i = j + 1
    return runs


def merge_runs(runs: list[tuple[float, float]], min_gap: float) -> list[tuple[float, float]]:
    """Join time intervals separated by less than ``min_gap`` seconds (input sorted by start)."""
    merged: list[tuple[float, float]] = []
    for start, end in runs:
        if merged and start - merged[-1][1] < min_gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def find_segments(
    starts: np.ndarray,
    ends: np.ndarray,
    scores: np.ndarray,
    labels: Sequence[str],
    *,
    threshold: float = 0.5,
    hysteresis: float = 0.1,
    smooth: int = 3,
    min_duration: float = 0.0,
    min_gap: float = 0.0,
    duration: float | None = None,
) -> list[Segment]:
    """Segments per label from window scores ``[N, L]`` and window times (seconds), sorted by start.

    ``smooth`` is the moving-average width in windows. ``duration`` (the video's length), when given,
    lets a segment that reaches the last window run to the end of the video.
    """
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64).reshape(len(starts), len(labels))
    n = len(starts)
    if n == 0:
        return []
    centres = (starts + ends) / 2
    # Edges between neighbouring windows: half-way between their centres.
    edges = np.concatenate([[starts[0]], (centres[1:] + centres[:-1]) / 2,
                            [max(ends[-1], duration or 0.0)]])
    smoothed = smooth_scores(scores, smooth)
    low = threshold - max(0.0, hysteresis)
    segments: list[Segment] = []
    for li, label in enumerate(labels):
        runs = hysteresis_runs(smoothed[:, li], threshold, low)
        intervals = merge_runs([(edges[a], edges[b + 1]) for a, b in runs], min_gap)
        for start, end in intervals:
            if end - start < min_duration:
                continue
            inside = (centres >= start) & (centres <= end)
            raw = scores[inside, li]
            peak = int(np.argmax(raw))
            segments.append(Segment(label, float(start), float(end), float(raw.mean()),
                                    float(raw[peak]), float(centres[inside][peak]), int(inside.sum())))
    segments.sort(key=lambda s: (s.start, labels.index(s.label)))
    return segments


def top_labels(scores: np.ndarray, labels: Sequence[str], threshold: float) -> list[tuple[str | None, float]]:
    """Per window: the best label and its score, or ``(None, score)`` when nothing reaches ``threshold``."""
    out: list[tuple[str | None, float]] = []
    for row in np.asarray(scores, dtype=np.float64):
        best = int(np.argmax(row))
        out.append((labels[best] if row[best] >= threshold else None, float(row[best])))
    return out
