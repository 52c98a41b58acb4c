"""When does each action happen? Sliding-window scoring of a whole video, and segments from the scores.

How a timeline is computed (``timeline(model, video, labels)``), one module per step:

1. **Sampling plan** (:mod:`~actionclip.temporal.plan`): windows of T frames on one time grid that
   overlapping windows share.
2. **Decode once, streaming** (:mod:`~actionclip.temporal.frames`): ``actionclip.video.iter_frames(
   path, fps=1/grid)`` yields the grid frames in order; each is preprocessed at once and, when the
   model allows it, encoded by the image encoder **once**, in batches. A ring buffer keeps only what
   the next window needs, so memory does not grow with the video's length.
3. **Scores per window** (:mod:`~actionclip.temporal.windows`): one cheap fusion pass over cached
   frame embeddings (or one encoder pass per window for models whose frames interact), then the
   softmax over labels and the independent per-label score (:mod:`~actionclip.temporal.detection`).
   Text embeddings are computed once.
4. **Segments** (:mod:`~actionclip.temporal.segments`) per label from the chosen score, and the
   result with its files (:mod:`~actionclip.temporal.result`).

A window's time span (``start``, ``end``) is that of its first and last frame, so its centre is the
mean time of its frames.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from actionclip.errors import UsageError, VideoError
from actionclip.temporal.frames import FrameEncoder, iter_windows
from actionclip.temporal.plan import plan_sampling
from actionclip.temporal.result import TimelineResult
from actionclip.temporal.segments import find_segments
from actionclip.temporal.windows import WindowScorer, check_score_kind

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel

__all__ = ["timeline"]


def timeline(
    model: VideoTextModel,
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
        model: a model from ``actionclip.load`` (or an ONNX export).
        video: path of a video file; decoded once, streaming.
        labels: the actions, in words.
        templates: prompt templates (default: the 16 of ActionCLIP).
        background: prompts of the independent score's background (default
            ``actionclip.temporal.detection.BACKGROUND_PROMPTS``).
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
    from actionclip.video.decode import iter_frames

    check_score_kind(score)
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"threshold {threshold}: must be between 0 and 1")
    if min_duration < 0 or min_gap < 0 or hysteresis < 0:
        raise UsageError("min_duration, min_gap and hysteresis must not be negative")
    t_frames = int(frames or model.num_frames)
    plan = plan_sampling(float(window), float(stride), t_frames)
    scorer = WindowScorer(model, labels, templates=templates, background=background)
    encoder = FrameEncoder(model, batch_size)
    if not encoder.encodes:  # whole windows go through the image encoder: batch about batch_size frames
        window_batch = max(1, min(window_batch, int(batch_size) // t_frames))

    t0 = time.perf_counter()
    starts: list[float] = []
    ends: list[float] = []
    probs: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    batch: list[Any] = []

    def score_batch() -> None:
        if batch:
            p, s = scorer.score(encoder.stack(batch))
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
        "model": model.name, "background": scorer.detector.background,
    }
    decision = scores_arr if score == "independent" else probs_arr
    segments = find_segments(starts_arr, ends_arr, decision, scorer.labels, threshold=threshold,
                             hysteresis=hysteresis, smooth=smooth_n, min_duration=min_duration,
                             min_gap=min_gap, duration=duration)
    stats = {
        "duration": duration,
        "windows": n,
        "frames_encoded": encoder.frames_encoded + scorer.frames_encoded,
        "encoder_calls": encoder.encoder_calls,
        "naive_frames_encoded": n * t_frames,
        "seconds": round(elapsed, 3),
        "realtime_factor": round(duration / elapsed, 2) if elapsed > 0 else None,
    }
    return TimelineResult(str(video), scorer.labels, starts_arr, ends_arr, probs_arr, scores_arr, segments,
                          settings, stats)
