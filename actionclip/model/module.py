"""The torch side of the model contract: device and dtype, no-grad inference, numpy in.

:class:`VideoModule` is the base of every torch video-text model (ActionCLIP and CLIP here, the
next families beside them). It answers the backend part of
:class:`~actionclip.model.base.VideoTextModel` for torch, and puts inputs on the model's device and
dtype, so callers may hand in numpy arrays, CPU tensors or GPU tensors alike.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from torch import nn

from actionclip.model import cuda
from actionclip.model.base import VideoTextModel
from actionclip.model.scoring import TORCH, ArrayOps

__all__ = ["VideoModule"]


class VideoModule(VideoTextModel, nn.Module):
    """A torch video-text model. Subclasses set ``config`` and implement ``encode_video``,
    ``encode_tokens`` (from ids on the model's device), ``logit_scale_param`` and ``context_length``."""

    ops: ArrayOps = TORCH

    def __init__(self) -> None:
        nn.Module.__init__(self)

    # --- the backend ------------------------------------------------------------------------------

    def from_numpy(self, array: np.ndarray, *, on_device: bool = False) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        return tensor.to(self.device) if on_device else tensor

    def inference(self) -> contextlib.AbstractContextManager[Any]:
        # no_grad rather than inference_mode: what comes out (label embeddings, say) may later meet
        # autograd (evaluation inside training), which inference tensors refuse. Under a caller's
        # inference_mode or no_grad, nothing changes.
        return torch.no_grad() if torch.is_grad_enabled() else contextlib.nullcontext()

    def _apply(self, fn: Any, recurse: bool = True) -> VideoModule:
        # .to(), .half(), .cuda() ... move the weights to new storage: CUDA graphs captured on the old
        # addresses must not replay (model/cuda.py).
        cuda.reset(self)
        return super()._apply(fn, recurse)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        cuda.reset(self)  # assign=True puts new tensors in place of the captured ones
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def train(self, mode: bool = True) -> VideoModule:
        # Weights about to be trained no longer match the file they were loaded from: drop the
        # identity (loading/identity.py) that caches of label embeddings are keyed by.
        if mode:
            self.fingerprint = None
        return nn.Module.train(self, mode)

    # --- device and precision -------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(p for p in self.parameters() if p.is_floating_point()).dtype

    @property
    def dtype_name(self) -> str:
        from actionclip.runtime import dtype_name

        return dtype_name(self.dtype)

    @property
    def on_gpu(self) -> bool:
        return self.device.type == "cuda"

    def _input(self, x: Any, *, floating: bool = True) -> torch.Tensor:
        """An input (numpy or tensor, anywhere) on the model's device, in its dtype when floating."""
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(np.ascontiguousarray(x))
        if floating:
            return x.to(device=self.device, dtype=self.dtype)
        return x.to(device=self.device)

    def bulk_score_dtype(self) -> torch.dtype:
        """The matmul precision for scoring a whole collection (``Index.classify``): the model's own
        where its matmuls are native (bf16, or fp16 on CUDA), 4x faster for 100,000 videos x 400 labels
        (the softmax stays fp32); fp32 for fp32 models. Single videos always score in fp32."""
        dtype = self.dtype
        if dtype == torch.bfloat16 or (dtype == torch.float16 and self.device.type == "cuda"):
            return dtype
        return torch.float32

    @property
    def logit_scale(self) -> torch.Tensor:
        """``exp(logit_scale)`` capped at ``config.max_logit_scale`` (100: CLIP's cap, and the fixed
        value ActionCLIP's test script uses)."""
        return self.logit_scale_param.float().exp().clamp(max=self.config.max_logit_scale)

    @property
    def logit_scale_param(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
