"""When does each action happen? Sliding-window scoring of a whole video, and segments from the scores.

How a timeline is computed (``timeline(model, video, labels)``):

1. **Sampling plan.** A window of ``window`` seconds holds T frames (the model's ``num_frames``) spaced
   ``window / T`` apart; windows start every ``stride`` seconds. The spacing is snapped so that the
   stride is a whole number of frame steps (or the frame step a whole number of strides); then every
   window's frames lie on one common time grid and overlapping windows share frames.
2. **Decode once, streaming.** ``actionclip.video.iter_frames(path, fps=1/grid)`` yields the grid
   frames in order; each is preprocessed at once (the full-size frame is dropped) and encoded by the
   image encoder **once**, in batches. A ring buffer keeps only the embeddings the next window needs
   (``(T-1)*step + 1`` of them), so memory does not grow with the video's length.
3. **One cheap fusion pass per window** over the cached frame embeddings (``model.fuse``), then both
   scores: the softmax over labels (``model.probabilities``) and the independent per-label score
   (:mod:`actionclip.detection`). Text embeddings are computed once.
4. **Segments** per label from the chosen score (independent by default): centred moving-average
   smoothing, hysteresis thresholding (enter at ``threshold``, stay while above
   ``threshold - hysteresis``), merging of gaps shorter than ``min_gap`` and dropping of segments
   shorter than ``min_duration``. A window whose best score is below ``threshold`` is *background*:
   no label is forced on it.

A window's time span (``start``, ``end``) is that of its first and last frame, so its centre is the mean
time of its frames. Segment edges are placed half-way between the centres of the last window below and
the first window above the threshold: for a clean cut, where half a window's frames change, an edge
lands within half a stride plus half a frame step of the cut, i.e. within one stride.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from actionclip.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch

SCORE_KINDS = ("independent", "softmax")


# ----------------------------------------------------------------------------------------------------
# Sampling plan
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingPlan:
    """Where the frames of every window lie on a common time grid.

    Grid frame ``n`` is at about ``n * grid`` seconds. Window ``i`` uses grid frames
    ``i * per_stride + j * step`` for ``j = 0..frames-1``.
    """

    window: float  #: requested window length, seconds
    stride: float  #: seconds between window starts (exact)
    frames: int  #: T, frames per window
    grid: float  #: seconds between decoded grid frames
    per_stride: int  #: grid frames per stride
    step: int  #: grid frames between two frames of one window

    @property
    def span(self) -> int:
        """Grid frames from a window's first frame to its last, inclusive (the ring buffer's size)."""
        return (self.frames - 1) * self.step + 1

    @property
    def effective_window(self) -> float:
        """Seconds actually covered by a window after snapping to the grid."""
        return self.frames * self.step * self.grid

    def needed(self, n: int) -> bool:
        """Whether grid frame ``n`` belongs to some window (frames between distant windows do not)."""
        if self.step > 1:
            return True  # then per_stride == 1: every grid frame starts a window
        return n % self.per_stride < self.span

    def window_indices(self, i: int) -> list[int]:
        return [i * self.per_stride + j * self.step for j in range(self.frames)]


def plan_sampling(window: float, stride: float, frames: int) -> SamplingPlan:
    """Snap a (window, stride, T) request to a grid on which overlapping windows share frames."""
    if not (window > 0 and math.isfinite(window)):
        raise UsageError(f"--window {window}: must be a positive number of seconds")
    if not (stride > 0 and math.isfinite(stride)):
        raise UsageError(f"--stride {stride}: must be a positive number of seconds")
    if frames < 1:
        raise UsageError(f"--frames {frames}: must be at least 1")
    spacing = window / frames
    if stride >= spacing:
        per_stride = max(1, round(stride / spacing))
        return SamplingPlan(window, stride, frames, stride / per_stride, per_stride, 1)
    step = max(1, round(spacing / stride))
    return SamplingPlan(window, stride, frames, stride, 1, step)


# ----------------------------------------------------------------------------------------------------
# Segments from score arrays (pure numpy)
# ----------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------
# Result
# ----------------------------------------------------------------------------------------------------


@dataclass
class Window:
    """One scored window: its time span, both scores per label, and the decision."""

    index: int
    start: float
    end: float
    probs: dict[str, float]  #: softmax over the labels given (sums to 1)
    scores: dict[str, float]  #: independent per-label scores (see actionclip.detection)
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "labels": self.labels,
            "settings": self.settings,
            "stats": self.stats,
            "windows": [
                {"index": w.index, "start": round(w.start, 6), "end": round(w.end, 6),
                 "top": w.top, "top_score": round(w.top_score, 6),
                 "probs": {k: round(v, 6) for k, v in w.probs.items()},
                 "scores": {k: round(v, 6) for k, v in w.scores.items()}}
                for w in self.windows
            ],
            "segments": [s.to_dict() for s in self.segments],
        }

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
        write_text_atomic(paths["windows_csv"], self.windows_csv())
        write_text_atomic(paths["windows_json"], json.dumps(windows_doc, indent=2, ensure_ascii=False) + "\n")
        write_text_atomic(paths["segments_csv"], self.segments_csv())
        write_text_atomic(paths["segments_json"], json.dumps(segments_doc, indent=2, ensure_ascii=False) + "\n")
        if plot:
            from actionclip.plotting import plot_timeline

            paths["png"] = Path(prefix + ".png")
            plot_timeline(self, paths["png"])
        return paths


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place.

    An unwritable place (missing permission, a file where a folder should be, a full disk) raises a
    one-line UsageError naming ``path``.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise UsageError(f"{path}: cannot write ({exc.strerror or exc})") from None
        raise


# ----------------------------------------------------------------------------------------------------
# Streaming scorer: frames -> cached embeddings -> windows
# ----------------------------------------------------------------------------------------------------


class FrameEncoder:
    """Preprocesses frames one at a time and encodes them in batches with the model's image encoder.

    ``frames_encoded`` counts images passed to ``model.encode_image`` (the expensive part).
    """

    def __init__(self, model: Any, batch_size: int = 32) -> None:
        self.model = model
        self.batch_size = max(1, int(batch_size))
        self.frames_encoded = 0
        self.encoder_calls = 0

    def preprocess(self, frame: np.ndarray) -> "torch.Tensor":
        import torch

        from actionclip.preprocess import preprocess_frames

        pixels = preprocess_frames(np.ascontiguousarray(frame)[None], resolution=self.model.input_resolution)
        return torch.as_tensor(pixels)[0]

    def encode(self, pixels: list["torch.Tensor"]) -> "torch.Tensor":
        """``[3, R, R]`` tensors -> ``[N, D]`` embeddings (float32, on the CPU)."""
        import torch

        batch = torch.stack(pixels).to(device=self.model.device, dtype=self.model.dtype)
        with torch.inference_mode():
            emb = self.model.encode_image(batch)
        self.frames_encoded += len(pixels)
        self.encoder_calls += 1
        return emb.float().cpu()


class WindowScorer:
    """Text embeddings once; scores batches of fused window embeddings with both scores."""

    def __init__(self, model: Any, labels: Sequence[str], *, templates: Sequence[str] | None = None,
                 background: Sequence[str] | None = None) -> None:
        import torch

        from actionclip.detection import IndependentScorer
        from actionclip.templates import check_labels

        self.model = model
        self.labels = check_labels(labels)
        with torch.inference_mode():
            self.label_emb = model.encode_labels(self.labels, templates)
            self.detector = IndependentScorer(model, self.labels, templates=templates, background=background,
                                              label_emb=self.label_emb)
        self.windows_fused = 0

    def score(self, frame_embs: "torch.Tensor") -> tuple[np.ndarray, np.ndarray]:
        """``[B, T, D]`` cached frame embeddings -> (softmax probs ``[B, L]``, independent ``[B, L]``)."""
        import torch

        model = self.model
        with torch.inference_mode():
            fused = model.fuse(frame_embs.to(device=model.device, dtype=model.dtype))
            probs = model.probabilities(fused, self.label_emb)
            scores = self.detector.scores(fused)
        self.windows_fused += frame_embs.shape[0]
        return probs.float().cpu().numpy(), scores.float().cpu().numpy()


def iter_windows(
    frames: Iterable[tuple[float, np.ndarray]],
    plan: SamplingPlan,
    encoder: FrameEncoder,
) -> Iterator[tuple[float, float, "torch.Tensor"]]:
    """Grid frames ``(t, rgb)`` in order -> ``(start, end, [T, D] frame embeddings)`` per window.

    ``start`` and ``end`` are the times of the window's first and last frame, so ``(start + end) / 2``
    is the mean time of its frames: where a window straddling a cut is evenly split.

    Each needed grid frame is encoded once; a ring buffer holds the embeddings of the last ``span``
    grid frames, which is all any pending window can still need. A video too short for one full window
    gives one window over all its frames, repeating frames as the original sampler does.
    """
    import torch

    ring: deque[tuple[int, float, "torch.Tensor"]] = deque()
    pending: list[tuple[int, float, "torch.Tensor"]] = []  # preprocessed, not yet encoded
    next_window = 0
    first_frames: list[tuple[float, "torch.Tensor"]] = []  # only kept while shorter than one window

    def flush() -> Iterator[tuple[float, float, "torch.Tensor"]]:
        nonlocal next_window
        if not pending:
            return
        embs = encoder.encode([p for _, _, p in pending])
        for (n, t, _), emb in zip(pending, embs):
            ring.append((n, t, emb))
            if len(first_frames) < plan.span:
                first_frames.append((t, emb))
            while ring and ring[0][0] < n - plan.span + 1:
                ring.popleft()
            while True:
                wanted = plan.window_indices(next_window)
                if wanted[-1] != n:
                    break
                by_index = {k: (tk, e) for k, tk, e in ring}
                stack = torch.stack([by_index[k][1] for k in wanted])
                yield by_index[wanted[0]][0], t, stack
                next_window += 1
        pending.clear()

    for n, (t, frame) in enumerate(frames):
        if not plan.needed(n):
            continue
        pending.append((n, float(t), encoder.preprocess(frame)))
        if len(pending) >= encoder.batch_size:
            yield from flush()
    yield from flush()
    if next_window == 0 and first_frames:
        # Shorter than one window: T frames spread over what there is.
        pick = np.linspace(0, len(first_frames) - 1, plan.frames).round().astype(int)
        stack = torch.stack([first_frames[k][1] for k in pick])
        yield first_frames[0][0], first_frames[-1][0], stack


# ----------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------


def timeline(
    model: Any,
    video: str | os.PathLike,
    labels: Sequence[str] | str,
    *,
    templates: Sequence[str] | None = None,
    background: Sequence[str] | None = None,
    window: float = 4.0,
    stride: float = 1.0,
    frames: int | None = None,
    threshold: float = 0.5,
    hysteresis: float = 0.1,
    smooth: float | None = None,
    min_duration: float = 0.0,
    min_gap: float = 0.0,
    score: str = "independent",
    start: float | None = None,
    end: float | None = None,
    batch_size: int = 32,
    window_batch: int = 64,
    progress: Callable[[float], None] | None = None,
) -> TimelineResult:
    """Score sliding windows over ``video`` against ``labels`` and find where each label happens.

    Args:
        model: an ``ActionCLIP`` (from ``actionclip.load``).
        video: path of a video file; decoded once, streaming.
        labels: the actions, in words.
        templates: prompt templates (default: the 16 of ActionCLIP).
        background: prompts of the independent score's background (default
            ``actionclip.detection.BACKGROUND_PROMPTS``).
        window: seconds per window; its T frames are spaced ``window / T`` apart.
        stride: seconds between window starts.
        frames: T, frames per window (default: the model's).
        threshold: a label is detected in a window when its decision score reaches this.
        hysteresis: a segment, once entered, lasts while the smoothed score stays above
            ``threshold - hysteresis``.
        smooth: width of the moving average over window scores, seconds (default ``3 * stride``;
            0 turns it off).
        min_duration: drop segments shorter than this, seconds.
        min_gap: join segments of one label separated by less than this, seconds.
        score: ``"independent"`` (default; per-label, background decision) or ``"softmax"`` (over the
            labels given; always sums to 1).
        start, end: only this part of the video, seconds.
        batch_size: frames per image-encoder call.
        window_batch: windows per fusion call.
        progress: called with the time (seconds) of each scored window.

    Returns:
        a :class:`TimelineResult`.
    """
    from actionclip.errors import VideoError
    from actionclip.video import iter_frames

    if score not in SCORE_KINDS:
        raise UsageError(f"--score {score!r}: must be one of {', '.join(SCORE_KINDS)}")
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold {threshold}: must be between 0 and 1")
    if min_duration < 0 or min_gap < 0 or hysteresis < 0:
        raise UsageError("--min-duration, --min-gap and --hysteresis must not be negative")
    t_frames = int(frames or model.num_frames)
    plan = plan_sampling(float(window), float(stride), t_frames)
    scorer = WindowScorer(model, labels, templates=templates, background=background)
    encoder = FrameEncoder(model, batch_size)

    t0 = time.perf_counter()
    starts: list[float] = []
    ends: list[float] = []
    probs: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    batch: list["torch.Tensor"] = []

    def score_batch() -> None:
        import torch

        if batch:
            p, s = scorer.score(torch.stack(batch))
            probs.append(p)
            scores.append(s)
            batch.clear()

    last_t = [0.0]

    def frames_iter() -> Iterator[tuple[float, np.ndarray]]:
        for t, frame in iter_frames(video, fps=1.0 / plan.grid, start=start, end=end):
            last_t[0] = float(t)
            yield t, frame

    for w_start, w_end, emb in iter_windows(frames_iter(), plan, encoder):
        starts.append(w_start)
        ends.append(w_end)
        batch.append(emb)
        if len(batch) >= window_batch:
            score_batch()
        if progress is not None:
            progress(w_end)
    score_batch()
    elapsed = time.perf_counter() - t0
    if not starts:
        raise VideoError(f"{video}: no frames could be decoded")

    n, n_labels = len(starts), len(scorer.labels)
    probs_arr = np.concatenate(probs).reshape(n, n_labels)
    scores_arr = np.concatenate(scores).reshape(n, n_labels)
    starts_arr, ends_arr = np.asarray(starts), np.asarray(ends)
    duration = max(float(ends_arr[-1]), last_t[0] + plan.grid)
    smooth_s = 3 * plan.stride if smooth is None else float(smooth)
    smooth_n = max(1, int(round(smooth_s / plan.stride)))
    settings = {
        "score": score, "window": plan.effective_window, "stride": plan.stride, "frames": t_frames,
        "frame_spacing": plan.grid * plan.step, "threshold": threshold, "hysteresis": hysteresis,
        "smooth": smooth_s, "min_duration": min_duration, "min_gap": min_gap,
        "model": getattr(model, "name", None), "background": scorer.detector.background,
    }
    decision = scores_arr if score == "independent" else probs_arr
    segments = find_segments(starts_arr, ends_arr, decision, scorer.labels, threshold=threshold,
                             hysteresis=hysteresis, smooth=smooth_n, min_duration=min_duration,
                             min_gap=min_gap, duration=duration)
    stats = {
        "duration": duration,
        "windows": n,
        "frames_encoded": encoder.frames_encoded,
        "encoder_calls": encoder.encoder_calls,
        "naive_frames_encoded": n * t_frames,
        "seconds": round(elapsed, 3),
        "realtime_factor": round(duration / elapsed, 2) if elapsed > 0 else None,
    }
    return TimelineResult(str(video), scorer.labels, starts_arr, ends_arr, probs_arr, scores_arr, segments,
                          settings, stats)
