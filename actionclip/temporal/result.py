"""A timeline's result: every window's scores, the segments, and the files they are saved as.

``TimelineResult.save(prefix)`` writes ``PREFIX.windows.csv/.json`` (every window), ``PREFIX
.segments.csv/.json`` and ``PREFIX.png`` (one lane per label), each atomically
(:mod:`actionclip.files`).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actionclip.files import write_text
from actionclip.temporal.segments import Segment, top_labels

__all__ = ["Window", "TimelineResult"]


@dataclass
class Window:
    """One scored window: its time span, both scores per label, and the decision."""

    index: int
    start: float
    end: float
    probs: dict[str, float]  #: softmax over the labels given (sums to 1)
    scores: dict[str, float]  #: independent per-label scores (see actionclip.temporal.detection)
    top: str | None  #: best label by the decision score, None for background
    top_score: float


@dataclass
class TimelineResult:
    """Window scores and segments of one video. ``save(prefix)`` writes CSV, JSON and a PNG plot."""

    video: str
    labels: list[str]
    starts: np.ndarray  #: [N] time of each window's first frame, seconds
    ends: np.ndarray  #: [N] time of each window's last frame, seconds
    probs: np.ndarray  #: [N, L] softmax over labels
    scores: np.ndarray  #: [N, L] independent scores
    segments: list[Segment]
    settings: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def decision_scores(self) -> np.ndarray:
        """The ``[N, L]`` scores that segments and the background decision use."""
        return self.scores if self.settings.get("score", "independent") == "independent" else self.probs

    @property
    def duration(self) -> float:
        return float(self.stats.get("duration") or (self.ends[-1] if len(self.ends) else 0.0))

    @property
    def windows(self) -> list[Window]:
        tops = top_labels(self.decision_scores, self.labels, self.settings["threshold"])
        return [
            Window(i, float(self.starts[i]), float(self.ends[i]),
                   {l: float(p) for l, p in zip(self.labels, self.probs[i])},
                   {l: float(s) for l, s in zip(self.labels, self.scores[i])}, *tops[i])
            for i in range(len(self.starts))
        ]

    def to_dict(self, *, windows: bool = True) -> dict[str, Any]:
        """The JSON document of this result (``timeline --json`` and the server's ``/v1/timeline``);
        ``windows=False`` leaves out the per-window scores."""
        doc: dict[str, Any] = {"video": self.video, "labels": self.labels, "settings": self.settings,
                               "stats": self.stats}
        if windows:
            doc["windows"] = [
                {"index": w.index, "start": round(w.start, 6), "end": round(w.end, 6),
                 "top": w.top, "top_score": round(w.top_score, 6),
                 "probs": {k: round(v, 6) for k, v in w.probs.items()},
                 "scores": {k: round(v, 6) for k, v in w.scores.items()}}
                for w in self.windows
            ]
        doc["segments"] = [s.to_dict() for s in self.segments]
        return doc

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def windows_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["index", "start", "end", "top", "top_score"]
                   + [f"prob:{l}" for l in self.labels] + [f"score:{l}" for l in self.labels])
        for win in self.windows:
            w.writerow([win.index, f"{win.start:.3f}", f"{win.end:.3f}", win.top or "", f"{win.top_score:.6f}"]
                       + [f"{win.probs[l]:.6f}" for l in self.labels]
                       + [f"{win.scores[l]:.6f}" for l in self.labels])
        return buf.getvalue()

    def segments_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["label", "start", "end", "duration", "mean_score", "peak_score", "peak_time", "windows"])
        for s in self.segments:
            w.writerow([s.label, f"{s.start:.3f}", f"{s.end:.3f}", f"{s.duration:.3f}", f"{s.mean_score:.6f}",
                        f"{s.peak_score:.6f}", f"{s.peak_time:.3f}", s.windows])
        return buf.getvalue()

    def save(self, prefix: str | os.PathLike, *, plot: bool = True) -> dict[str, Path]:
        """Write ``PREFIX.windows.csv/.json``, ``PREFIX.segments.csv/.json`` and ``PREFIX.png``.

        Each file is written to a temporary name and renamed, so none is ever half-written.
        """
        prefix = str(prefix)
        data = self.to_dict()
        segments_doc = {k: data[k] for k in ("video", "labels", "settings", "segments")}
        windows_doc = {k: data[k] for k in ("video", "labels", "settings", "stats", "windows")}
        paths = {
            "windows_csv": Path(prefix + ".windows.csv"),
            "windows_json": Path(prefix + ".windows.json"),
            "segments_csv": Path(prefix + ".segments.csv"),
            "segments_json": Path(prefix + ".segments.json"),
        }
        write_text(paths["windows_csv"], self.windows_csv())
        write_text(paths["windows_json"], json.dumps(windows_doc, indent=2, ensure_ascii=False) + "\n")
        write_text(paths["segments_csv"], self.segments_csv())
        write_text(paths["segments_json"], json.dumps(segments_doc, indent=2, ensure_ascii=False) + "\n")
        if plot:
            from actionclip.temporal.plot import plot_timeline

            paths["png"] = Path(prefix + ".png")
            plot_timeline(self, paths["png"])
        return paths
