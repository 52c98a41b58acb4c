"""GPU helpers for the benchmark: pinned-memory copies, ``torch.compile``, CUDA graphs.

No-ops or one-line errors on machines without CUDA (their CPU paths are tested there too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from actionclip.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch


def to_device(tensor: torch.Tensor, device: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Move a CPU batch to ``device``; on CUDA through pinned memory so the copy is asynchronous.

    The dtype cast happens on the GPU after the copy when it narrows (fp32 -> bf16 on the GPU is
    free, and the host stays out of the way), and before it when it widens (uint8 frames are cast on
    the GPU, which is the point: a quarter of the bytes cross PCIe).
    """
    if not str(device).startswith("cuda"):
        return tensor.to(device=device, dtype=dtype) if dtype is not None else tensor.to(device)
    if tensor.device.type == "cpu" and not tensor.is_pinned():
        tensor = tensor.pin_memory()
    out = tensor.to(device, non_blocking=True)
    return out.to(dtype) if dtype is not None else out


def maybe_compile(fn: Callable[..., Any], enabled: bool, mode: str = "max-autotune-no-cudagraphs") -> Callable:
    """``torch.compile(fn)`` when enabled (and supported); else ``fn`` unchanged.

    Compilation costs tens of seconds once, so only long runs (bench, eval, batch classify on a GPU)
    should ask for it.
    """
    if not enabled:
        return fn
    import torch

    if not hasattr(torch, "compile"):
        raise UsageError(f"torch.compile: torch {torch.__version__} does not have it")
    return torch.compile(fn, mode=mode, dynamic=False)


class CudaGraphEncoder:
    """Replay ``fn`` on a fixed-shape input as one CUDA graph (removes per-kernel launch overhead).

    ``fn`` is any pure tensor function (``model.encode_video``); each input shape is captured once
    and replayed after (:class:`actionclip.model.cuda.GraphCache`, the cache the models use on CUDA;
    keep the set of shapes small: pad the last batch to the common size). Outputs are clones, so the
    caller may keep them across calls.
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], warmup: int = 3):
        import functools

        import torch

        from actionclip.model.cuda import GraphCache, capture_graph

        if not torch.cuda.is_available():
            raise UsageError("CUDA graphs: CUDA is not available on this machine")
        self.fn = fn
        self._cache = GraphCache(fn, max_graphs=64, capture=functools.partial(capture_graph, warmup=warmup))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        with torch.inference_mode():
            return self._cache(x)


def synchronize(device: str) -> None:
    """Wait for queued GPU work (timings are meaningless without it); no-op on CPU."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()
