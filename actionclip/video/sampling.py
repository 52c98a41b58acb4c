"""Which frames represent a clip: TSN segment sampling, the protocol of ActionCLIP and its successors.

A clip of ``T`` frames is drawn from ``n`` by splitting the video into ``T`` equal segments and taking
one frame of each: its centre at test time, a random one in training. Pure arithmetic on indices
(numpy only), shared by file decoding, decoded-frame arrays and datasets.
"""

from __future__ import annotations

import math

import numpy as np

from actionclip.errors import UsageError

__all__ = ["SAMPLING_MODES", "sample_indices", "clip_indices"]

from actionclip.choices import SAMPLING_MODES


def sample_indices(
    num_frames: int,
    T: int,
    mode: str = "center",
    *,
    clip: int = 0,
    clips: int = 1,
    rng: np.random.Generator | None = None,
) -> list[int]:
    """Indices (0-based) of the ``T`` frames to sample from ``num_frames``, TSN style.

    Modes (``n = num_frames``):

    * ``center`` - the original ActionCLIP test protocol (``_get_val_indices``): ``T`` equal segments,
      the middle frame of each, ``int(i*n/T + (n/T - 1)/2)``; ``T == 1`` takes ``n // 2``; a video
      with ``n <= T`` frames gives ``i*n // T`` (frames repeat).
    * ``random`` - the training protocol (``_sample_indices``): one random frame in each segment
      ``[i*n//T, (i+1)*n//T)``; with ``n <= T``: every frame once plus ``T-n`` random ones, sorted.
    * ``uniform`` - evenly spaced, first and last frame included: ``round(i*(n-1)/(T-1))`` (the
      middle frame when ``T == 1``).

    Temporal views (``clips = C``, this is clip ``clip``): ``center`` puts clip ``c`` at fraction
    ``(c + 0.5) / C`` of each segment, ``int(i*n/T + ((2c+1)*n/(T*C) - 1)/2)`` (``C == 1`` is the
    formula above), and with ``n <= T`` ``(i*C + c)*n // (T*C)``; ``random`` draws each clip
    independently; ``uniform`` shifts the grid by ``c/C`` of a step, with the step chosen so that
    clip 0 starts at the first frame and clip ``C-1`` ends at the last.
    """
    n, T, C, c = int(num_frames), int(T), int(clips), int(clip)
    if n < 1:
        raise UsageError(f"cannot sample from a video with {n} frames")
    if T < 1:
        raise UsageError(f"frames must be at least 1, got {T}")
    if C < 1 or not 0 <= c < C:
        raise UsageError(f"clip {c} of {C}: need clips >= 1 and 0 <= clip < clips")
    if mode == "center":
        if T == 1 and C == 1:
            return [n // 2]
        if n <= T:
            return [(i * C + c) * n // (T * C) for i in range(T)]
        offset = ((2 * c + 1) * n / (T * C) - 1) / 2.0
        return [min(n - 1, max(0, int(i * n / T + offset))) for i in range(T)]
    if mode == "random":
        rng = rng if rng is not None else np.random.default_rng()
        if n <= T:
            extra = rng.integers(n, size=T - n)
            return sorted(int(x) for x in np.concatenate([np.arange(n), extra]))
        ticks = [i * n // T for i in range(T + 1)]
        return [ticks[i] + int(rng.integers(ticks[i + 1] - ticks[i])) for i in range(T)]
    if mode == "uniform":
        if T == 1 and C == 1:
            return [(n - 1) // 2]
        step = (n - 1) / (T - 1 + (C - 1) / C)
        return [min(n - 1, int(math.floor(c * step / C + i * step + 0.5))) for i in range(T)]
    raise UsageError(f"unknown sampling mode {mode!r}; choose one of {', '.join(SAMPLING_MODES)}")


def clip_indices(num_frames: int, frames: int, *, clips: int = 1, mode: str = "center",
                 seed: int | None = None) -> np.ndarray:
    """Indices ``[clips, frames]`` of every temporal view of a video of ``num_frames`` frames.

    The one sampling rule for files (:func:`actionclip.video.read_video`) and decoded frame arrays
    (``model.prepare_video``), so both give the same views for the same ``clips``, ``mode`` and
    ``seed``.
    """
    if mode not in SAMPLING_MODES:
        raise UsageError(f"unknown sampling mode {mode!r}; choose one of {', '.join(SAMPLING_MODES)}")
    rng = np.random.default_rng(seed)
    return np.array([sample_indices(num_frames, frames, mode, clip=c, clips=clips, rng=rng)
                     for c in range(int(clips))], dtype=np.int64).reshape(int(clips), int(frames))
