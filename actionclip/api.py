"""``actionclip.load``: the one entry point that turns a name or a path into a ready model.

It chooses the backend: an ONNX export (the folder ``actionclip export --onnx`` writes, or its JSON)
runs on ONNX Runtime without torch (:mod:`actionclip.onnx.backend`); anything else is a torch model
(:func:`actionclip.loading.load.load`: a registry name or a checkpoint in any supported format). It
also imports the workflow layer, so that ``model.timeline`` and ``model.watch`` are there
(:mod:`actionclip.model.conveniences`). This module sits at the top of the library's layers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actionclip.choices import BACKENDS
from actionclip.errors import UsageError

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel

__all__ = ["load", "is_onnx_export"]

# device -> ONNX Runtime providers (None: every provider the runtime has, CUDA first)
_PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


def is_onnx_export(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an ONNX export: its metadata JSON, or a folder holding one."""
    path = Path(os.fspath(path)).expanduser()
    candidates = [path] if path.is_file() and path.suffix == ".json" else sorted(path.glob("*.json")) if path.is_dir() else []
    for candidate in candidates:
        try:
            if json.loads(candidate.read_text(encoding="utf-8")).get("format") == "actionclip-onnx":
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


def load(
    name_or_path: str | os.PathLike,
    device: Any = "auto",
    dtype: Any = None,
    frames: int | None = None,
    *,
    backend: str = "auto",
    onnx_precision: str = "auto",
) -> VideoTextModel:
    """Load a model by registry name (``"vit-b-32-8f"``, see ``actionclip models``; downloaded and
    cached on first use), from a local checkpoint file or folder in any supported format, or from
    an ONNX export.

    Args:
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        dtype: ``None``/``"auto"`` picks the fast native precision for the device (bf16 on CPUs with
            AMX/AVX512-BF16 and on CUDA cards with bf16, fp16 on older cards, fp32 on other CPUs);
            or ``"fp32"``, ``"bf16"``, ``"fp16"`` (or a torch dtype). Pass ``"fp32"`` for results
            that match a reference implementation to 1e-5. An ONNX export runs in its own precision.
        frames: frames sampled per clip (default: the model's; an ONNX export keeps its own).
        backend: ``"auto"`` (ONNX Runtime for an ONNX export, torch otherwise), ``"torch"`` or ``"onnx"``.
        onnx_precision: which graphs of an ONNX export run: ``"fp32"``, ``"int8"`` (written by
            ``export --int8``), or ``"auto"`` (fp32 when the export holds them, else int8).

    Returns:
        The model, ready for inference (torch models in eval mode).
    """
    import actionclip.temporal  # noqa: F401 - registers model.timeline and model.watch

    if backend not in BACKENDS + ("auto",):
        raise UsageError(f"backend {backend!r}: expected auto, {', '.join(BACKENDS)}")
    if backend == "onnx" or (backend == "auto" and is_onnx_export(name_or_path)):
        return _load_onnx(name_or_path, device, dtype, frames, onnx_precision)
    from actionclip.loading.load import load as load_torch

    return load_torch(name_or_path, device=device, dtype=dtype, frames=frames)


def _load_onnx(path: str | os.PathLike, device: Any, dtype: Any, frames: int | None,
               precision: str) -> VideoTextModel:
    if not Path(os.fspath(path)).expanduser().exists():
        raise UsageError(f"{os.fspath(path)}: an ONNX model is the folder 'actionclip export MODEL --onnx DIR' "
                         "writes (or its JSON file)")
    if dtype is not None and str(dtype).lower() != "auto":
        raise UsageError(f"dtype {dtype}: an ONNX export runs in its own precision (leave dtype at auto)")
    try:
        from actionclip.onnx import backend as onnx_backend
    except ImportError as exc:
        raise UsageError(f"the ONNX backend cannot be loaded ({exc}); install it with: pip install 'actionclip[onnx]'") from None
    model = onnx_backend.load(Path(os.fspath(path)).expanduser(), precision=precision,
                              providers=_PROVIDERS.get(str(device or "auto")))
    if frames is not None and int(frames) != model.num_frames:
        raise UsageError(f"frames {frames}: this ONNX export was made for {model.num_frames} frames per clip")
    return model
