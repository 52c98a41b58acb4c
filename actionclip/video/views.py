"""A video (file or decoded frames) to a model's normalised views: the one path every backend takes.

``VideoViews(preprocessing, frames)`` holds what the model says about its input and nothing else,
so it pickles small and runs in decoding threads or worker processes alike. Calling it samples the
temporal clips (:func:`actionclip.video.sampling.clip_indices`: the same rule for a file and for an
array of decoded frames), then preprocesses every frame into ``crops`` spatial views
(:mod:`actionclip.video.preprocess`): ``[V, T, 3, R, R]`` with ``V = crops x clips``, crop-major.
``torch=True`` returns a torch tensor (and resizes with torch's faster kernel), else numpy.
``normalize=False`` stops at the 8-bit crops (numpy uint8, whichever kernel resized them), which decode
workers send back for the model's side to finish with :func:`~actionclip.video.preprocess.normalize_uint8`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from actionclip.errors import UsageError
from actionclip.video.preprocess import Preprocessing, preprocess_frames
from actionclip.video.sampling import clip_indices

__all__ = ["VideoViews"]


@dataclass(frozen=True)
class VideoViews:
    """Turns videos into normalised views for one model (see the module notes)."""

    preprocessing: Preprocessing
    frames: int
    sampling: str = "center"
    torch: bool = False

    def __call__(self, video: Any, *, frames: int | None = None, clips: int = 1, crops: int = 1,
                 mode: str | None = None, start: float | None = None, end: float | None = None,
                 seed: int | None = None, normalize: bool = True) -> Any:
        """A path, uint8 RGB frames ``[N, H, W, 3]``, or normalised pixels ``[T, 3, R, R]`` /
        ``[V, T, 3, R, R]`` -> normalised views ``[V, T, 3, R, R]`` (uint8 crops with ``normalize=False``;
        normalised pixels are returned as they are).

        Decoded frames are sampled exactly as a file would be (``clips``, ``mode``, ``seed``);
        ``start``/``end`` apply to files."""
        if not isinstance(video, (str, os.PathLike)) and _is_float(video):
            pixels = video if video.ndim == 5 else video[None]
            return self._backend(pixels) if isinstance(pixels, np.ndarray) else pixels
        return self.pixels(self.sample(video, frames=frames, clips=clips, mode=mode, start=start, end=end,
                                       seed=seed), crops, normalize=normalize)

    def sample(self, video: Any, *, frames: int | None = None, clips: int = 1, mode: str | None = None,
               start: float | None = None, end: float | None = None, seed: int | None = None) -> np.ndarray:
        """A path or uint8 RGB frames ``[N, H, W, 3]`` -> the sampled clips, uint8 ``[C, T, H, W, 3]``."""
        frames = int(frames or self.frames)
        mode = mode or self.sampling
        if isinstance(video, (str, os.PathLike)):
            from actionclip.video.decode import read_video

            return read_video(video, frames=frames, clips=clips, mode=mode, start=start, end=end, seed=seed)
        raw = np.asarray(video.cpu() if hasattr(video, "cpu") else video)
        if raw.dtype != np.uint8 or raw.ndim != 4 or raw.shape[-1] != 3:
            raise UsageError("frames must be uint8 RGB [N, H, W, 3] (or normalised floats), "
                             f"got {raw.dtype} {raw.shape}")
        return raw[clip_indices(raw.shape[0], frames, clips=clips, mode=mode, seed=seed)]

    def pixels(self, clips: np.ndarray, crops: int = 1, *, normalize: bool = True) -> Any:
        """Sampled uint8 clips ``[C, T, H, W, 3]`` -> normalised views ``[crops * C, T, 3, R, R]`` (the
        uint8 crops with ``normalize=False``)."""
        out = preprocess_frames(self._backend(clips), self.preprocessing, crops, normalize=normalize)
        out = out.reshape(-1, *out.shape[-4:])
        if not normalize and not isinstance(out, np.ndarray):
            out = out.numpy()  # crops travel (to the model's side, through a pipe) as plain numpy
        return out

    def _backend(self, array: np.ndarray) -> Any:
        if not self.torch:
            return array
        import torch

        return torch.from_numpy(np.ascontiguousarray(array))


def _is_float(video: Any) -> bool:
    if isinstance(video, np.ndarray):
        return np.issubdtype(video.dtype, np.floating)
    return bool(getattr(video, "is_floating_point", lambda: False)())
