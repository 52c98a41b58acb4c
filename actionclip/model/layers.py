"""The transformer layers shared by every tower and head: CLIP's image and text encoders, the
Transf fusion head, and the video models built on CLIP.

Parameter names follow OpenAI's CLIP release exactly (``attn.in_proj_weight``, ``ln_1``, ``mlp.c_fc``
...), so released state dicts load without renaming. Attention runs through
``F.scaled_dot_product_attention`` on batch-first tensors (OpenAI's code uses
``nn.MultiheadAttention`` on sequence-first tensors; the maths is the same, the fused kernel is
faster). In inference, blocks take :mod:`actionclip.model.fastpath`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from actionclip.errors import CheckpointError
from actionclip.model import fastpath
from actionclip.model.activations import make_activation


def count_layers(sd: Mapping[str, torch.Tensor], prefix: str) -> int:
    """How many numbered blocks ``prefix<N>.`` a state dict holds."""
    return len({k[len(prefix):].split(".")[0] for k in sd if k.startswith(prefix)})


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 whatever the input dtype (as OpenAI's CLIP does for fp16).

    On CUDA, an fp16/bf16 input with weights of its own dtype goes straight to the kernel, which
    already accumulates in fp32: the explicit round trip there cost two copies of every activation
    per norm (issue 18)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 or (x.is_cuda and self.weight is not None and self.weight.dtype == x.dtype):
            return super().forward(x)
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


class Linear(nn.Linear):
    """``nn.Linear`` that skips random initialisation: its weights always come from a checkpoint (or
    :meth:`CLIP.initialize_parameters`), and initialising ~150M parameters would cost about a second
    on every load."""

    def reset_parameters(self) -> None:
        pass


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` without random initialisation (see :class:`Linear`)."""

    def reset_parameters(self) -> None:
        pass


class Embedding(nn.Embedding):
    """``nn.Embedding`` without random initialisation (see :class:`Linear`)."""

    def reset_parameters(self) -> None:
        pass


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names, batch-first."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise CheckpointError(f"attention width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = Linear(width, width)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        return self.out_proj(self.attend(qkv, causal))

    def attend(self, qkv: torch.Tensor, causal: bool = False) -> torch.Tensor:
        """Projected ``[N, L, 3W]`` queries/keys/values -> the heads' outputs ``[N, L, W]`` (before
        ``out_proj``); shared with :mod:`actionclip.model.fastpath`, which projects through packed weights."""
        n, length, width3 = qkv.shape
        width = width3 // 3
        qkv = qkv.view(n, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        keys, values = self.extend_keys(qkv[1], qkv[2])
        out = F.scaled_dot_product_attention(qkv[0], keys, values, is_causal=causal)
        return out.transpose(1, 2).reshape(n, length, width)

    def extend_keys(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys and values ``[N, heads, S, head_dim]`` the queries attend to: the sequence's own
        here; a subclass may add others (Open-VCLIP's neighbouring frames, same parameters)."""
        return keys, values


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int, activation: str = "quick_gelu", eps: float = 1e-5):
        super().__init__()
        self.attn = SelfAttention(width, heads)
        self.ln_1 = LayerNorm(width, eps=eps)
        self.mlp = nn.Sequential(
            OrderedDict(
                c_fc=Linear(width, width * 4),
                gelu=make_activation(activation),
                c_proj=Linear(width * 4, width),
            )
        )
        self.ln_2 = LayerNorm(width, eps=eps)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        if fastpath.applies():
            return fastpath.block_forward(self, x, causal)
        x = x + self.attn(self.ln_1(x), causal=causal)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of pre-LN residual attention blocks on batch-first tensors [N, L, W]."""

    def __init__(self, width: int, layers: int, heads: int, activation: str = "quick_gelu", eps: float = 1e-5):
        super().__init__()
        self.width = width
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(width, heads, activation, eps) for _ in range(layers)
        )

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, causal=causal)
        return x


def load_state_dict_checked(module: nn.Module, sd: Mapping[str, torch.Tensor], what: str) -> None:
    """``load_state_dict(strict=True, assign=True)`` with one-line, named errors instead of a wall of text."""
    expected = module.state_dict(keep_vars=True)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) e.g. {', '.join(missing[:3])}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s) e.g. {', '.join(unexpected[:3])}")
        raise CheckpointError(f"{what} weights do not match the architecture: {'; '.join(parts)}")
    for key, value in sd.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{what} weight {key!r} has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)}"
            )
    # Checkpoints may be fp16: load everything as fp32; the caller casts the whole model once.
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=True, assign=True)
