"""Training augmentations of ActionCLIP, in torch (no torchvision), batched over clips.

The original (``utils/Augmentation.py``) applies, to every frame of a clip with the same random
draw: multi-scale crop (scales 1, .875, .75, .66 of the short side, aspect distortion of at most one
step, 13 fixed positions) resized to the input size, horizontal flip (p=0.5), colour jitter (p=0.8;
brightness .4, contrast .4, saturation .2, hue .1) and grayscale (p=0.2), then the model's mean/std.

Geometry runs per clip (clips differ in size before the crop); the colour operations run on a whole
batch ``[B, T, 3, R, R]`` at once with one random draw per clip. All randomness comes from a
``torch.Generator`` so a seed reproduces a run. Unlike torchvision's ``ColorJitter`` applied image by
image in the original, one jitter is drawn per clip, so a clip's frames stay consistent in colour.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "SCALES",
    "multi_scale_crop_box",
    "multi_scale_crop",
    "random_flip",
    "color_jitter",
    "random_grayscale",
    "TrainAugment",
]

from actionclip.video.preprocess import Preprocessing, normalize_, resize_short_side

SCALES = (1.0, 0.875, 0.75, 0.66)


def _rand(generator: torch.Generator | None, *shape: int) -> Tensor:
    return torch.rand(shape, generator=generator)


def _randint(generator: torch.Generator | None, high: int) -> int:
    return int(torch.randint(high, (1,), generator=generator))


def multi_scale_crop_box(height: int, width: int, size: int, scales=SCALES, max_distort: int = 1,
                         generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """``(top, left, crop_h, crop_w)`` as the original's ``GroupMultiScaleCrop`` draws it."""
    base = min(height, width)
    sizes = [int(base * s) for s in scales]
    # Sizes within 3 px of the target snap to it (avoids a needless resample).
    hs = [size if abs(s - size) < 3 else s for s in sizes]
    ws = [size if abs(s - size) < 3 else s for s in sizes]
    pairs = [(h, w) for i, h in enumerate(hs) for j, w in enumerate(ws) if abs(i - j) <= max_distort]
    crop_h, crop_w = pairs[_randint(generator, len(pairs))]
    crop_h, crop_w = max(1, min(crop_h, height)), max(1, min(crop_w, width))
    hs_step, ws_step = (height - crop_h) // 4, (width - crop_w) // 4
    # The 13 fixed positions (corners, centre, edge centres, quarter points) in grid units of 1/4.
    grid = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2), (2, 0), (2, 4), (4, 2), (0, 2),
            (1, 1), (1, 3), (3, 1), (3, 3)]
    gy, gx = grid[_randint(generator, len(grid))]
    return gy * hs_step, gx * ws_step, crop_h, crop_w


def multi_scale_crop(clip: Tensor, size: int, scales=SCALES, max_distort: int = 1,
                     generator: torch.Generator | None = None) -> Tensor:
    """Crop one clip ``[T, 3, H, W]`` (float) with one drawn box and resize it to ``size``."""
    top, left, ch, cw = multi_scale_crop_box(clip.shape[-2], clip.shape[-1], size, scales, max_distort,
                                             generator)
    crop = clip[..., top:top + ch, left:left + cw]
    if (ch, cw) == (size, size):
        return crop.contiguous()
    return F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=ch > size or cw > size)


def _per_clip(mask: Tensor, x: Tensor) -> Tensor:
    """Broadcast a [B] mask/factor over [B, T, C, H, W]."""
    return mask.view(-1, *([1] * (x.dim() - 1)))


def random_flip(x: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Mirror each clip of ``[B, T, 3, H, W]`` left-right with probability ``p``."""
    flip = _rand(generator, x.shape[0]) < p
    return torch.where(_per_clip(flip, x), x.flip(-1), x)


def _gray(x: Tensor) -> Tensor:
    """ITU-R 601 luma, keepdim over the channel axis (as PIL's "L" conversion)."""
    r, g, b = x.unbind(-3)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def _blend(a: Tensor, b: Tensor, factor: Tensor) -> Tensor:
    return (factor * a + (1 - factor) * b).clamp(0, 1)


def _rgb_to_hsv(x: Tensor) -> Tensor:
    r, g, b = x.unbind(-3)
    maxc, _ = x.max(dim=-3)
    minc, _ = x.min(dim=-3)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return torch.stack([h, s, maxc], dim=-3)


def _hsv_to_rgb(x: Tensor) -> Tensor:
    h, s, v = x.unbind(-3)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.long() % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    # Sextant i picks (r, g, b) from (v, q, p, t) in the classic order.
    choices = torch.stack([v, q, p, t], dim=-3)
    order = torch.tensor([[0, 3, 2], [1, 0, 2], [2, 0, 3], [2, 1, 0], [3, 2, 0], [0, 2, 1]])
    idx = order[i].movedim(-1, -3)
    return choices.gather(-3, idx)


def color_jitter(x: Tensor, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.2,
                 hue: float = 0.1, p: float = 0.8, generator: torch.Generator | None = None) -> Tensor:
    """Random brightness/contrast/saturation/hue of ``[B, T, 3, H, W]`` in [0, 1], per clip.

    Each clip is jittered with probability ``p``; factors are uniform in ``[1-a, 1+a]`` (hue: shift
    in ``[-hue, hue]`` turns), the four operations in one random order per batch (as torchvision).
    """
    b = x.shape[0]
    apply = _rand(generator, b) < p

    def factor(amount: float) -> Tensor:
        f = 1 + (2 * _rand(generator, b) - 1) * amount
        return _per_clip(torch.where(apply, f, torch.ones_like(f)), x).to(x.dtype)

    bf, cf, sf = factor(brightness), factor(contrast), factor(saturation)
    hf = _per_clip(torch.where(apply, (2 * _rand(generator, b) - 1) * hue, torch.zeros(b)), x).to(x.dtype)
    out = x
    for op in torch.randperm(4, generator=generator).tolist():
        if op == 0 and brightness:
            out = (out * bf).clamp(0, 1)
        elif op == 1 and contrast:
            out = _blend(out, _gray(out).mean(dim=(-2, -1), keepdim=True), cf)
        elif op == 2 and saturation:
            out = _blend(out, _gray(out), sf)
        elif op == 3 and hue:
            hsv = _rgb_to_hsv(out)
            h = (hsv[..., :1, :, :] + hf) % 1.0
            out = _hsv_to_rgb(torch.cat([h, hsv[..., 1:, :, :]], dim=-3))
    return out


def random_grayscale(x: Tensor, p: float = 0.2, generator: torch.Generator | None = None) -> Tensor:
    """Turn each clip of ``[B, T, 3, H, W]`` to 3-channel gray with probability ``p``."""
    gray = _rand(generator, x.shape[0]) < p
    return torch.where(_per_clip(gray, x), _gray(x).expand_as(x), x)


@dataclasses.dataclass
class TrainAugment:
    """The ActionCLIP training transform, in two halves.

    :meth:`geometry` (per clip, in data workers): uint8 ``[T, H, W, 3]`` -> short side scaled as
    the model's test-time view (``R * 256 / 224`` for CLIP models) -> multi-scale crop -> float
    ``[T, 3, R, R]`` in [0, 1].
    :meth:`colour` (per batch): flip, jitter, grayscale, the model's mean/std.

    ``flip=False`` is for labels that name a direction ("moving left"), where a mirror changes the
    class (the original turns flipping off for Something-Something for the same reason).
    """

    preprocessing: Preprocessing
    scales: tuple[float, ...] = SCALES
    flip: bool = True
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1)
    jitter_p: float = 0.8
    gray_p: float = 0.2

    @property
    def resolution(self) -> int:
        return self.preprocessing.resolution

    @property
    def scale_size(self) -> int:
        return self.preprocessing.short_side(1)  # as the test-time preprocessing

    def geometry(self, frames: Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = resize_short_side(torch.as_tensor(frames).permute(0, 3, 1, 2).float(), self.scale_size,
                              self.preprocessing.interpolation)
        return multi_scale_crop(x.div_(255), self.resolution, self.scales, generator=generator)

    def colour(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.flip:
            x = random_flip(x, 0.5, generator)
        if self.jitter_p > 0:
            x = color_jitter(x, *self.jitter, p=self.jitter_p, generator=generator)
        if self.gray_p > 0:
            x = random_grayscale(x, self.gray_p, generator)
        return normalize_(x, self.preprocessing, value_range=1.0)
