"""Where a timeline's windows take their frames: one time grid that overlapping windows share.

A window of ``window`` seconds holds T frames (the model's ``num_frames``) spaced ``window / T``
apart; windows start every ``stride`` seconds. The spacing is snapped so that the stride is a whole
number of frame steps (or the frame step a whole number of strides); then every window's frames lie
on one common grid, and a frame decoded once serves every window that contains it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from actionclip.errors import UsageError

__all__ = ["SamplingPlan", "plan_sampling"]


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
        raise UsageError(f"window {window}: must be a positive number of seconds")
    if not (stride > 0 and math.isfinite(stride)):
        raise UsageError(f"stride {stride}: must be a positive number of seconds")
    if frames < 1:
        raise UsageError(f"frames {frames}: must be at least 1")
    spacing = window / frames
    if stride >= spacing:
        per_stride = max(1, round(stride / spacing))
        return SamplingPlan(window, stride, frames, stride / per_stride, per_stride, 1)
    step = max(1, round(spacing / stride))
    return SamplingPlan(window, stride, frames, stride, 1, step)
