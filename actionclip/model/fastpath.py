"""Inference-only fast path for the transformer blocks (CLIP's towers and the Transf fusion heads).

Two rewrites, used only when autograd is off, that leave the maths unchanged:

* **QuickGELU folded into the MLP.** ``h * sigmoid(1.702 h)`` is ``silu(1.702 h) / 1.702``, so the
  MLP becomes ``c_proj(silu(1.702 * c_fc(y)) / 1.702)``: the scale is applied in place, the SiLU runs
  in place, and the ``1 / 1.702`` rides on the ``c_proj`` matmul (``addmm``'s ``alpha``) -- one
  elementwise pass over the 4x-wide activations instead of three allocating ones. Any device, any
  dtype; no extra memory. (~6% of an fp32 MLP here.)
* **oneDNN weight prepacking for bf16 on CPUs with native bf16 (AMX / AVX512-BF16).** ``F.linear``
  reorders the weight into oneDNN's blocked layout on every call; for the 400-row matmuls of an
  8-frame clip that reorder is a third of the time. Each block's four weights are packed once, with
  ``1.702`` folded into the ``c_fc`` copy so that oneDNN's fused SiLU gives ``silu(1.702 h)``; the
  ``1 / 1.702`` is applied to ``c_proj``'s output together with the residual add (folding it into
  the ``c_proj`` weights too would round each of them once more in bf16, for ~2% speed). A B/32
  clip encode goes from ~170 ms to ~145 ms here (docs/speed.md). The packed copies cost one more
  copy of the blocks' weights (~250 MB for B/32 in bf16); they live beside the parameters, not in
  ``state_dict()``, and are rebuilt when a weight is changed or moved (keyed by each weight's storage
  and version counter; weights made under ``torch.inference_mode()`` have no version counter, so for
  them the key is the storage alone and :func:`invalidate` must follow an in-place edit).

``ACTIONCLIP_FASTPATH=0`` turns both off (to compare, or to rule them out when debugging).
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from actionclip.model.activations import QUICK_GELU_SCALE, QuickGELU

if TYPE_CHECKING:
    from torch import nn

_CACHE_ATTR = "_actionclip_packed"


def enabled() -> bool:
    return os.environ.get("ACTIONCLIP_FASTPATH", "1") != "0"


def applies() -> bool:
    """True when the inference rewrites may run: autograd is off (under ``no_grad`` or
    ``inference_mode``; with it on, even a frozen input can meet trainable weights, and the packed
    copies carry no gradient), and no tracer (ONNX export, TorchScript, ``torch.compile``) is
    recording ops that must stay portable."""
    if torch.is_grad_enabled():
        return False
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return False
    return enabled()


@functools.cache
def can_prepack_bf16() -> bool:
    """oneDNN's packed bf16 linear is present and this CPU runs bf16 natively (emulated bf16 through
    oneDNN is slower than the plain path). Tried once on a tiny matrix, so an op that exists but is
    refused on this machine turns the packing off instead of failing a forward pass."""
    from actionclip.runtime import cpu_info

    if not (torch.backends.mkldnn.is_available() and cpu_info().bf16_unit):
        return False
    return _prepack_works()


def _prepack_works() -> bool:
    try:
        weight = torch.ones(16, 16, dtype=torch.bfloat16)
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, 4)
        out = torch.ops.mkldnn._linear_pointwise(torch.ones(4, 16, dtype=torch.bfloat16), packed, None, "none", [], "")
        return bool(torch.all(out == 16))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def _wants_prepack(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.bfloat16 and can_prepack_bf16()


def block_forward(block: nn.Module, x: torch.Tensor, causal: bool) -> torch.Tensor:
    """``block(x)`` for inference; the caller has checked :func:`applies`."""
    quick_gelu = isinstance(block.mlp.gelu, QuickGELU)
    if quick_gelu and _wants_prepack(x):
        return _packed_forward(block, _packed_weights(block, x), x, causal)
    x = x + block.attn(block.ln_1(x), causal=causal)
    y = block.ln_2(x)
    if not quick_gelu:
        return x + block.mlp(y)
    return x + _folded_mlp(block, y)


def _folded_mlp(block: nn.Module, y: torch.Tensor) -> torch.Tensor:
    fc, proj = block.mlp.c_fc, block.mlp.c_proj
    h = F.linear(y, fc.weight, fc.bias).mul_(QUICK_GELU_SCALE)
    F.silu(h, inplace=True)
    flat = h.reshape(-1, h.shape[-1])
    out = torch.addmm(proj.bias, flat, proj.weight.t(), alpha=1.0 / QUICK_GELU_SCALE)
    return out.view(*h.shape[:-1], out.shape[-1])


def _packed_weights(block: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    attn, fc, proj = block.attn, block.mlp.c_fc, block.mlp.c_proj
    sources = (attn.in_proj_weight, attn.in_proj_bias, attn.out_proj.weight, attn.out_proj.bias,
               fc.weight, fc.bias, proj.weight, proj.bias)
    key = tuple((p.data_ptr(), _version(p), p.dtype) for p in sources)
    cached = block.__dict__.get(_CACHE_ATTR)
    if cached is not None and cached["key"] == key:
        return cached
    rows = max(1, x.numel() // x.shape[-1])  # a layout hint only: the packed weight takes any row count
    with torch.no_grad():
        pack = torch.ops.mkldnn._reorder_linear_weight
        cached = {
            "key": key,
            "qkv": pack(attn.in_proj_weight, rows), "qkv_bias": attn.in_proj_bias,
            "out": pack(attn.out_proj.weight, rows), "out_bias": attn.out_proj.bias,
            "fc": pack(fc.weight * QUICK_GELU_SCALE, rows), "fc_bias": fc.bias * QUICK_GELU_SCALE,
            "proj": pack(proj.weight, rows), "proj_bias": proj.bias,
        }
    block.__dict__[_CACHE_ATTR] = cached  # a plain attribute: not a parameter, buffer or state_dict entry
    return cached


def _version(tensor: torch.Tensor) -> int:
    # Inference tensors track no version (reading it raises); their storage pointer is the key.
    return -1 if tensor.is_inference() else tensor._version


def invalidate(module: nn.Module) -> None:
    """Drop the packed copies under ``module`` (after editing weights in place in inference mode)."""
    for sub in module.modules():
        sub.__dict__.pop(_CACHE_ATTR, None)


def _packed_forward(block: nn.Module, w: dict[str, Any], x: torch.Tensor, causal: bool) -> torch.Tensor:
    linear = torch.ops.mkldnn._linear_pointwise
    width = x.shape[-1]
    # bf16 layer_norm accumulates in fp32 inside the kernel, so the fp32 round trip of
    # clip_model.LayerNorm (kept for fp16) is not needed here.
    y = F.layer_norm(x, (width,), block.ln_1.weight, block.ln_1.bias, block.ln_1.eps)
    attended = block.attn.attend(linear(y, w["qkv"], w["qkv_bias"], "none", [], ""), causal)
    x = x + linear(attended, w["out"], w["out_bias"], "none", [], "")
    y = F.layer_norm(x, (width,), block.ln_2.weight, block.ln_2.bias, block.ln_2.eps)
    h = linear(y, w["fc"], w["fc_bias"], "swish", [], "")  # silu(1.702 h), fused into the matmul
    out = linear(h, w["proj"], None, "none", [], "")
    return torch.add(x, out, alpha=1.0 / QUICK_GELU_SCALE).add_(w["proj_bias"])
