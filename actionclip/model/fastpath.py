"""Inference-only fast path for the transformer blocks (CLIP's towers, X-CLIP's blocks and the Transf
fusion heads) and the image tower's patch embedding.

Rewrites used only when autograd is off and nothing is tracing, that leave the maths unchanged:

* **QuickGELU folded into the MLP.** ``h * sigmoid(1.702 h)`` is ``silu(1.702 h) / 1.702``, so the
  MLP becomes ``c_proj(silu(1.702 * c_fc(y)) / 1.702)``: the scale is applied in place, the SiLU runs
  in place, and the ``1 / 1.702`` rides on the ``c_proj`` matmul (``addmm``'s ``alpha``) -- one
  elementwise pass over the 4x-wide activations instead of three allocating ones. Any device, any
  dtype; no extra memory. (~6% of an fp32 MLP here.)
* **oneDNN weight prepacking for bf16 on CPUs with native bf16 (AMX / AVX512-BF16).** ``F.linear``
  reorders the weight into oneDNN's blocked layout on every call; for the 400-row matmuls of an
  8-frame clip that reorder is a third of the time. Each block's four weights are packed once, with
  ``1.702`` folded into the ``c_fc`` copy so that oneDNN's fused SiLU gives ``silu(1.702 h)``, and
  ``1 / 1.702`` folded into the ``c_proj`` copy (both scaled in fp32 and rounded once). Both residual
  adds ride on their matmul as oneDNN's binary ``add`` post-op, so a block makes no elementwise
  pass of its own besides the two LayerNorms. The packed copies cost one more copy of the blocks'
  weights (~250 MB for B/32 in bf16); they live beside the parameters, not in ``state_dict()``, and
  are rebuilt when a weight is changed or moved (keyed by each weight's storage and version counter;
  weights made under ``torch.inference_mode()`` have no version counter, so for them the key is the
  storage alone and :func:`invalidate` must follow an in-place edit).
* **The patch embedding as a matmul (CPU).** A ViT's patch convolution (kernel = stride) is a matmul
  over the unfolded patches; oneDNN's convolution runs that shape at a fraction of its matmul rate
  (B/32, 8 frames: 3.4 ms as a convolution, 1.4 ms as a matmul in bf16; 8.3 -> 6.7 ms in fp32).

``ACTIONCLIP_FASTPATH=0`` turns them all off (to compare, or to rule them out when debugging).
docs/speed.md has the measurements.
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
    if torch.is_grad_enabled() or tracing():
        return False
    return enabled()


def tracing() -> bool:
    """A tracer (ONNX export, TorchScript) or the compiler is recording ops: they must see the plain
    eager code (this fast path and :mod:`actionclip.model.cuda` step aside)."""
    return bool(torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling())


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
    fc, activation, proj = block.mlp.c_fc, block.mlp.gelu, block.mlp.c_proj
    if isinstance(activation, QuickGELU) and _wants_prepack(x):
        return _packed_forward(block, _packed_weights(block, _block_parts(block), x), x, causal)
    x = x + block.attn(block.ln_1(x), causal=causal)
    return mlp_residual(block, x, block.ln_2(x), fc, activation, proj)


def mlp_residual(owner: nn.Module, x: torch.Tensor, y: torch.Tensor, fc: nn.Linear, activation: nn.Module,
                 proj: nn.Linear) -> torch.Tensor:
    """``x + proj(activation(fc(y)))`` for inference (a pre-LN MLP and its residual, as in X-CLIP's
    prompt generator); the caller has checked :func:`applies`. ``owner`` keeps the packed weights."""
    if not isinstance(activation, QuickGELU) or fc.bias is None or proj.bias is None:
        return x + proj(activation(fc(y)))
    if _wants_prepack(y):
        return _packed_mlp(_packed_weights(owner, _mlp_parts(fc, proj), y), x, y)
    return x + _folded_mlp(fc, proj, y)


def patch_tokens(conv: nn.Conv2d, images: torch.Tensor) -> torch.Tensor:
    """A ViT patch embedding ``conv(images).flatten(2).transpose(1, 2)`` (kernel = stride, no padding,
    no bias) -> tokens ``[N, g*g, W]``; the caller has checked :func:`applies`. On the CPU it runs as
    one matmul over the unfolded patches: oneDNN's convolution takes a 32x32-stride kernel at a fifth
    of its matmul rate (bf16), and the unfolding copy is one pass over the pixels."""
    if images.device.type != "cpu" or images.dtype not in (torch.float32, torch.bfloat16):
        return conv(images).flatten(2).transpose(1, 2)
    n, channels, height, width = images.shape
    patch = conv.kernel_size[0]
    rows, cols = height // patch, width // patch
    patches = (images.reshape(n, channels, rows, patch, cols, patch)
               .permute(0, 2, 4, 1, 3, 5)
               .reshape(n * rows * cols, channels * patch * patch))
    tokens = F.linear(patches, conv.weight.reshape(conv.weight.shape[0], -1))
    return tokens.view(n, rows * cols, -1)


def _folded_mlp(fc: nn.Linear, proj: nn.Linear, y: torch.Tensor) -> torch.Tensor:
    h = F.linear(y, fc.weight, fc.bias).mul_(QUICK_GELU_SCALE)
    F.silu(h, inplace=True)
    flat = h.reshape(-1, h.shape[-1])
    out = torch.addmm(proj.bias, flat, proj.weight.t(), alpha=1.0 / QUICK_GELU_SCALE)
    return out.view(*h.shape[:-1], out.shape[-1])


# Up to how many rows the attention output projection takes its one-row packing (measured on a
# 2-core AMX Xeon, B/32: one clip's encode ~6% faster with it, four clips' ~2% slower).
_FEW_ROWS = 800

# name -> (weight, bias, weight scale, bias scale) of each linear to pack
_Parts = dict[str, tuple[torch.Tensor, "torch.Tensor | None", float, float]]


def _mlp_parts(fc: nn.Linear, proj: nn.Linear) -> _Parts:
    # 1.702 on c_fc (weight and bias) so that oneDNN's fused SiLU gives silu(1.702 h); 1 / 1.702 on
    # c_proj's weight only, its bias being added after the product.
    return {"fc": (fc.weight, fc.bias, QUICK_GELU_SCALE, QUICK_GELU_SCALE),
            "proj": (proj.weight, proj.bias, 1.0 / QUICK_GELU_SCALE, 1.0)}


def _block_parts(block: Any) -> _Parts:  # a ResidualAttentionBlock (layers.py imports this module)
    attn = block.attn
    return {"qkv": (attn.in_proj_weight, attn.in_proj_bias, 1.0, 1.0),
            "out": (attn.out_proj.weight, attn.out_proj.bias, 1.0, 1.0),
            **_mlp_parts(block.mlp.c_fc, block.mlp.c_proj)}


def _packed_weights(owner: nn.Module, parts: _Parts, x: torch.Tensor) -> dict[str, Any]:
    key = tuple((t.data_ptr(), _version(t), t.dtype) for weight, bias, _, _ in parts.values()
                for t in (weight, bias) if t is not None)
    cached = owner.__dict__.get(_CACHE_ATTR)
    if cached is not None and cached["key"] == key:
        return cached
    rows = max(1, x.numel() // x.shape[-1])  # a layout hint only: the packed weight takes any row count

    def scaled(t: torch.Tensor, by: float) -> torch.Tensor:
        # Scaled in fp32 and rounded once, as a bf16 checkpoint's weight was.
        return t if by == 1.0 else (t.float() * by).to(t.dtype)

    cached = {"key": key}
    with torch.no_grad():
        for name, (weight, bias, weight_scale, bias_scale) in parts.items():
            cached[name] = torch.ops.mkldnn._reorder_linear_weight(scaled(weight, weight_scale), rows)
            cached[f"{name}_bias"] = None if bias is None else scaled(bias, bias_scale)
        if "out" in parts:
            # oneDNN picks its kernel by the packing's row hint. For the square attention output
            # projection, a packing for one row runs one 8-frame clip's 400 rows ~20% faster and
            # four clips' rows slower, so both are kept (+1/12 of the block's packed weights).
            cached["out_few"] = torch.ops.mkldnn._reorder_linear_weight(parts["out"][0], 1)
    owner.__dict__[_CACHE_ATTR] = cached  # a plain attribute: not a parameter, buffer or state_dict entry
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
    # The residual adds ride on the matmuls (oneDNN's binary post-op): x + attended @ W.T + b in one pass.
    out = w["out_few"] if x.numel() <= _FEW_ROWS * width else w["out"]
    x = linear.binary(attended, x, out, w["out_bias"], "add")
    return _packed_mlp(w, x, F.layer_norm(x, (width,), block.ln_2.weight, block.ln_2.bias, block.ln_2.eps))


def _packed_mlp(w: dict[str, Any], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    linear = torch.ops.mkldnn._linear_pointwise
    h = linear(y, w["fc"], w["fc_bias"], "swish", [], "")  # silu(1.702 h), fused into the matmul
    return linear.binary(h, x, w["proj"], w["proj_bias"], "add")  # c_proj holds the 1 / 1.702
