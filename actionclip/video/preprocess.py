"""Turn decoded RGB frames into the normalised pixel views a model expects; torch-free.

The rules live here once, for every backend (torch, ONNX Runtime) and every model family; what
differs between models is data, a :class:`Preprocessing` carried by the model and its registry entry
(as timm's pretrained configs carry mean/std and crop):

* **Single view** (``crops=1``), ActionCLIP's and X-CLIP's test transform: short side resized to
  ``round(R * resize_ratio)`` (256 for R = 224), centre crop R x R.
* **Three crops** (``crops=3``), mmaction2's ``ThreeCrop`` used for 3-crop testing: short side
  resized to R, three R x R crops along the long side (left, centre, right; or top, centre, bottom).
* Pixels: the resize's output rounded and clamped to 0..255 like an 8-bit image, ``/ 255``, then the
  model's mean/std (CLIP's or ImageNet's).

The two steps may run apart: ``preprocess_frames(..., normalize=False)`` stops at the 8-bit crops
(uint8, a quarter of the float32 bytes), which is what decode workers send back, and
:func:`normalize_uint8` finishes them where the model runs (on its device for torch, in numpy for
ONNX). Because the crops are already whole numbers 0..255, the split gives exactly the float path's
values.

Two kernels compute the same resize, chosen by the input's type, because each backend must stay
free of the other's library: a torch tensor goes through ``F.interpolate(antialias=True)`` (the
faster one, 1.5-4x on large frames), a numpy array through two small weight matrices built here
(the kernel and support PyTorch and PIL use), restricted to the rows and columns the crops keep.
They agree to float rounding: after the 8-bit rounding a pixel occasionally lands on the other side
of .5, one grey level (tests/test_preprocess.py measures it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from actionclip.choices import CROPS, INTERPOLATIONS
from actionclip.errors import UsageError

__all__ = ["CLIP_MEAN", "CLIP_STD", "IMAGENET_MEAN", "IMAGENET_STD", "CROPS", "INTERPOLATIONS",
           "Preprocessing", "preprocess_frames", "normalize_", "normalize_uint8", "resize_size", "crop_boxes",
           "view_geometry", "resize_weights", "resize_to", "resize_short_side"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Frames resized per interpolate call: bounds the float32 working memory for huge frames.
_MAX_CHUNK_PIXELS = 48 * 1024 * 1024


@dataclass(frozen=True)
class Preprocessing:
    """How a model wants its pixels: input size, resize rule, interpolation, mean/std (0..1 scale)."""

    resolution: int = 224
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    resize_ratio: float = 256 / 224  # single view: short side = round(resolution * resize_ratio)
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        if self.resolution < 1:
            raise UsageError(f"resolution must be at least 1, got {self.resolution}")
        if self.interpolation not in INTERPOLATIONS:
            raise UsageError(f"interpolation {self.interpolation!r}: expected one of {', '.join(INTERPOLATIONS)}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def short_side(self, crops: int) -> int:
        """The resized short side for ``crops`` views (1: the resize ratio; 3: the resolution)."""
        if crops not in CROPS:
            raise UsageError(f"crops must be 1 or 3, got {crops}")
        return round(self.resolution * self.resize_ratio) if crops == 1 else self.resolution

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        known = {k: data[k] for k in ("resolution", "mean", "std", "resize_ratio", "interpolation") if k in data}
        return cls(**known)


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


def view_geometry(height: int, width: int, prep: Preprocessing, crops: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """The resized size ``(new_h, new_w)`` of a ``height`` x ``width`` frame and its crop corners."""
    new_h, new_w = resize_size(height, width, prep.short_side(crops))
    return (new_h, new_w), crop_boxes(new_h, new_w, prep.resolution, crops)


def preprocess_frames(frames: Any, preprocessing: Preprocessing | int | None = None, crops: int = 1, *,
                      normalize: bool = True) -> Any:
    """uint8 RGB frames ``[..., H, W, 3]`` -> normalised float32 ``[..., 3, R, R]``.

    With ``crops=3`` the result is ``[3, ..., 3, R, R]`` (one leading entry per crop). A numpy array
    gives a numpy array, a torch tensor a torch tensor (see the module notes on the two kernels).

    Args:
        frames: uint8 array or tensor, any leading dimensions (e.g. ``[C, T]``).
        preprocessing: the model's :class:`Preprocessing` (an int R is ``Preprocessing(R)``: CLIP's
            mean/std, bicubic, 256/224); default ``Preprocessing()``.
        crops: 1 (centre crop) or 3 (three crops along the long side).
        normalize: False stops before ``/ 255`` and mean/std: the 8-bit crops, uint8 ``[..., 3, R, R]``
            (finish them with :func:`normalize_uint8`).
    """
    prep = _as_preprocessing(preprocessing)
    if crops not in CROPS:
        raise UsageError(f"crops must be 1 or 3, got {crops}")
    is_numpy = isinstance(frames, np.ndarray)
    shape, dtype = tuple(frames.shape), str(frames.dtype)
    if dtype not in ("uint8", "torch.uint8") or len(shape) < 3 or shape[-1] != 3:
        raise UsageError(f"frames must be uint8 RGB [..., H, W, 3], got {dtype} {shape}")
    lead, (height, width) = shape[:-3], shape[-3:-1]
    (new_h, new_w), boxes = view_geometry(height, width, prep, crops)
    flat = frames.reshape(-1, height, width, 3)
    resize = _resize_crop_numpy if is_numpy else _resize_crop_torch
    views = resize(flat, (new_h, new_w), boxes, prep)  # crops x [N, 3, R, R], float 0..255
    finish = (lambda view: normalize_(view, prep)) if normalize else _to_uint8
    out = [finish(view).reshape(*lead, 3, prep.resolution, prep.resolution) for view in views]
    if crops == 1:
        return out[0]
    if is_numpy:
        return np.stack(out)
    import torch

    return torch.stack(out)


def normalize_(pixels: Any, preprocessing: Preprocessing, value_range: float = 255.0) -> Any:
    """Apply the model's mean/std in place to float RGB ``[..., 3, H, W]`` (numpy or torch) whose
    values run over ``0..value_range``; returns ``pixels``."""
    for c in range(3):
        pixels[..., c, :, :] -= value_range * preprocessing.mean[c]
        pixels[..., c, :, :] /= value_range * preprocessing.std[c]
    return pixels


def normalize_uint8(pixels: Any, preprocessing: Preprocessing) -> Any:
    """The 8-bit crops of ``preprocess_frames(..., normalize=False)`` -> the model's normalised float32
    pixels, where ``pixels`` lies (a torch tensor stays on its device; numpy stays numpy): exactly what
    ``preprocess_frames`` gives in one step. Float input is taken as already normalised and returned."""
    if isinstance(pixels, np.ndarray):
        if pixels.dtype != np.uint8:
            return pixels
        return normalize_(pixels.astype(np.float32), preprocessing)
    if pixels.is_floating_point():
        return pixels
    return normalize_(pixels.float(), preprocessing)


def _to_uint8(view: Any) -> Any:
    # The resize already rounded and clamped to 0..255: the cast is exact.
    return view.astype(np.uint8) if isinstance(view, np.ndarray) else view.to(dtype=_torch_uint8())


def _torch_uint8() -> Any:
    import torch

    return torch.uint8


def _as_preprocessing(value: Preprocessing | int | None) -> Preprocessing:
    if value is None:
        return Preprocessing()
    if isinstance(value, Preprocessing):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return Preprocessing(resolution=int(value))
    raise UsageError(f"preprocessing must be a Preprocessing or a resolution, got {value!r}")


# --- the numpy kernel -------------------------------------------------------------------------------


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    # Keys' cubic with a = -0.5: the kernel PyTorch uses for antialiased bicubic, and PIL always.
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def _triangle(x: np.ndarray) -> np.ndarray:
    return np.clip(1.0 - np.abs(x), 0.0, None)


@lru_cache(maxsize=64)
def resize_weights(in_size: int, out_size: int, interpolation: str = "bicubic") -> np.ndarray:
    """``[out_size, in_size]`` resize weights: ``out = W @ in`` along one axis.

    Bicubic is antialiased (the kernel widened by the downscale factor, PyTorch's
    ``_compute_indices_weights_aa`` and PIL's rule); bilinear is not (OpenCV's and mmcv's
    ``cv2.resize`` rule, which ``F.interpolate(mode="bilinear")`` also follows).
    """
    scale = in_size / out_size
    if interpolation == "bicubic":
        kernel, base = _cubic, 2.0
        support, inv = (base * scale, 1.0 / scale) if scale >= 1.0 else (base, 1.0)
    else:
        kernel, support, inv = _triangle, 1.0, 1.0
    weights = np.zeros((out_size, in_size), dtype=np.float64)
    for i in range(out_size):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        w = kernel((np.arange(lo, hi) - center + 0.5) * inv)
        total = w.sum()
        weights[i, lo:hi] = w / total if total != 0 else w
    return weights.astype(np.float32)


def _resize_crop_numpy(frames: np.ndarray, size: tuple[int, int], boxes: list[tuple[int, int]],
                       prep: Preprocessing) -> list[np.ndarray]:
    n, height, width, _ = frames.shape
    new_h, new_w = size
    r = prep.resolution
    x = frames.transpose(0, 3, 1, 2).astype(np.float32)  # [N, 3, H, W]
    views = []
    for y, x0 in boxes:
        if (new_h, new_w) == (height, width):
            views.append(x[..., y : y + r, x0 : x0 + r].copy())  # each view normalised in place
            continue
        rows = resize_weights(height, new_h, prep.interpolation)[y : y + r]  # only the rows the crop keeps
        cols = resize_weights(width, new_w, prep.interpolation)[x0 : x0 + r]
        view = rows @ (x @ cols.T)
        np.clip(np.round(view, out=view), 0, 255, out=view)
        views.append(view)
    return views


# --- the torch kernel -------------------------------------------------------------------------------


def _resize_crop_torch(frames: Any, size: tuple[int, int], boxes: list[tuple[int, int]],
                       prep: Preprocessing) -> list[Any]:
    import torch

    r = prep.resolution
    x = resize_to(frames.permute(0, 3, 1, 2).float(), size, prep.interpolation)  # [N, 3, h, w]
    # clone: each view is normalised in place, and three crops of a frame already R x R coincide
    return [x[..., y : y + r, x0 : x0 + r].clone(memory_format=torch.contiguous_format) for y, x0 in boxes]


def resize_to(pixels: Any, size: tuple[int, int], interpolation: str = "bicubic") -> Any:
    """Torch float ``[N, 3, H, W]`` in 0..255 resized to ``size`` -> rounded, clamped 0..255, like an
    8-bit image (bicubic antialiased as PIL; bilinear as OpenCV). Chunked to bound memory."""
    import torch
    import torch.nn.functional as F

    if tuple(size) == tuple(pixels.shape[-2:]):
        return pixels
    chunk = max(1, _MAX_CHUNK_PIXELS // max(1, pixels.shape[-1] * pixels.shape[-2] * 3))
    return torch.cat([F.interpolate(part, size=tuple(size), mode=interpolation, align_corners=False,
                                    antialias=interpolation == "bicubic")
                      for part in torch.split(pixels, chunk)]).round_().clamp_(0, 255)


def resize_short_side(pixels: Any, short: int, interpolation: str = "bicubic") -> Any:
    """Torch float ``[N, 3, H, W]`` in 0..255 with the short side resized to ``short`` (see
    :func:`resize_to`); used by training's augmentations."""
    return resize_to(pixels, resize_size(pixels.shape[-2], pixels.shape[-1], short), interpolation)
