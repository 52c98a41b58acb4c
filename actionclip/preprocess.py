"""Turn decoded RGB frames into the normalised pixels the released checkpoints expect.

Single view (``crops=1``), as ActionCLIP's test transform: short side resized to
``round(R * 256 / 224)`` (256 for R = 224) with bicubic interpolation, centre crop R x R,
``/ 255``, CLIP mean/std.

Three crops (``crops=3``), the multi-view test convention of mmaction2's ``ThreeCrop`` (used by
ActionCLIP/X-CLIP for 3-crop testing): short side resized to R, then three R x R crops along the
long side - left, centre, right (or top, centre, bottom for portrait frames).

The resize is ``torch.nn.functional.interpolate(mode="bicubic", antialias=True)`` on the whole batch,
rounded and clamped to 0..255 like an 8-bit image, which reproduces PIL's bicubic resize closely
(measured on real clips: see docs/video.md); torchvision is not needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from actionclip.errors import UsageError

__all__ = ["CLIP_MEAN", "CLIP_STD", "preprocess_frames", "resize_short_side", "crop_boxes",
           "resize_size"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Frames resized per interpolate call: bounds the float32 working memory for huge frames.
_MAX_CHUNK_PIXELS = 48 * 1024 * 1024


def resize_size(height: int, width: int, short: int) -> tuple[int, int]:
    """``(new_h, new_w)`` with the short side = ``short``, aspect kept (mmcv's rounding)."""
    scale = short / min(height, width)
    if height <= width:
        return short, max(short, int(width * scale + 0.5))
    return max(short, int(height * scale + 0.5)), short


def crop_boxes(height: int, width: int, size: int, crops: int) -> list[tuple[int, int]]:
    """Top-left corners ``(y, x)`` of the ``size`` x ``size`` crops (1: centre; 3: along the long side)."""
    if crops == 1:
        return [(int(round((height - size) / 2.0)), int(round((width - size) / 2.0)))]
    if crops == 3:
        if width >= height:
            y, step = int(round((height - size) / 2.0)), (width - size) // 2
            return [(y, 0), (y, step), (y, width - size)]
        x, step = int(round((width - size) / 2.0)), (height - size) // 2
        return [(0, x), (step, x), (height - size, x)]
    raise UsageError(f"crops must be 1 or 3, got {crops}")


def resize_short_side(pixels: torch.Tensor, short: int) -> torch.Tensor:
    """Bicubic (antialiased) resize of float ``[N, 3, H, W]`` in 0..255 -> rounded, clamped 0..255."""
    new_h, new_w = resize_size(pixels.shape[-2], pixels.shape[-1], short)
    if (new_h, new_w) == tuple(pixels.shape[-2:]):
        return pixels
    per_frame = max(1, pixels.shape[-1] * pixels.shape[-2] * 3)
    chunk = max(1, _MAX_CHUNK_PIXELS // per_frame)
    out = [F.interpolate(part, size=(new_h, new_w), mode="bicubic", align_corners=False,
                         antialias=True)
           for part in torch.split(pixels, chunk)]
    return torch.cat(out).round_().clamp_(0, 255)


def preprocess_frames(frames: Any, resolution: int = 224, crops: int = 1) -> torch.Tensor:
    """uint8 RGB frames ``[..., H, W, 3]`` -> normalised float32 ``[..., 3, R, R]``.

    With ``crops=3`` the result is ``[3, ..., 3, R, R]`` (one leading entry per crop).

    Args:
        frames: numpy array or torch tensor, uint8, any leading dimensions (e.g. ``[C, T]``).
        resolution: R, the model's input size.
        crops: 1 (centre crop) or 3 (three crops along the long side).
    """
    if crops not in (1, 3):
        raise UsageError(f"crops must be 1 or 3, got {crops}")
    x = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(frames))
    if x.dtype != torch.uint8 or x.dim() < 3 or x.shape[-1] != 3:
        raise UsageError(f"frames must be uint8 RGB [..., H, W, 3], got {x.dtype} {tuple(x.shape)}")
    lead, (height, width) = x.shape[:-3], x.shape[-3:-1]
    x = x.reshape(-1, height, width, 3).permute(0, 3, 1, 2).float()
    short = round(resolution * 256 / 224) if crops == 1 else resolution
    x = resize_short_side(x, short)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1) * 255.0
    views = []
    for y, x0 in crop_boxes(x.shape[-2], x.shape[-1], resolution, crops):
        view = (x[..., y : y + resolution, x0 : x0 + resolution] - mean) / std
        views.append(view.reshape(*lead, 3, resolution, resolution))
    return views[0].contiguous() if crops == 1 else torch.stack(views)
