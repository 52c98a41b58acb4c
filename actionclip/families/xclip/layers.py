"""The three pieces X-CLIP adds to CLIP (Ni et al., 2022, "Expanding Language-Image Pretrained Models
for General Video Recognition"), built from the CLIP blocks of :mod:`actionclip.model.layers`.

* :class:`CrossFrameBlock`: a CLIP image block whose frames talk. Before the block's attention, each
  frame's class token is projected into a *message token* (``message_fc``); the T message tokens of a
  clip attend to each other (``message_ln``, ``message_attn``, residual); each frame then appends its
  message token to its own tokens for the block's self-attention, and drops it again before the MLP.
  The MLP is per token, so running the whole CLIP block on the ``L + 1`` tokens and dropping the
  message afterwards is the same computation (one extra token's MLP, ~1/L more work) and keeps the
  block's inference fast path (:mod:`actionclip.model.fastpath`).
* :class:`MultiframeIntegration` (``mit``): frame embeddings ``[B, T, D]`` + a learned position table
  of T rows, a few CLIP blocks, a residual around them, the mean over frames.
* :class:`PromptGenerator` (``prompts_generator``): text embeddings attend to the clip's visual
  tokens (LayerNorm'd), two pre-LN cross-attention + MLP layers, scaled per channel by ``alpha``; the
  caller adds the result to the text embeddings ("video-specific prompts"). In inference its MLPs
  take the fast path's QuickGELU MLP (:func:`actionclip.model.fastpath.mlp_residual`).

Parameter names are the original release's (``message_attn.in_proj_weight``, ``mit.resblocks.0``,
``prompts_generator.decoder.0.cross_attn.q_proj`` ...), so its state dicts load without renaming.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from actionclip.errors import CheckpointError
from actionclip.model import fastpath
from actionclip.model.activations import make_activation
from actionclip.model.layers import LayerNorm, Linear, ResidualAttentionBlock, SelfAttention, Transformer

__all__ = ["CrossFrameBlock", "CrossFrameTransformer", "MultiframeIntegration", "PromptGenerator"]


class CrossFrameBlock(ResidualAttentionBlock):
    """A CLIP block with X-CLIP's cross-frame message token; input ``[B*T, L, W]`` (frames of a clip
    consecutive)."""

    def __init__(self, width: int, heads: int, activation: str = "quick_gelu", eps: float = 1e-5):
        super().__init__(width, heads, activation, eps)
        self.message_fc = Linear(width, width)
        self.message_ln = LayerNorm(width, eps=eps)
        self.message_attn = SelfAttention(width, heads)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:  # type: ignore[override]
        width = x.shape[-1]
        message = self.message_fc(x[:, 0]).view(-1, frames, width)  # [B, T, W]
        message = message + self.message_attn(self.message_ln(message))
        x = torch.cat([x, message.reshape(-1, 1, width)], dim=1)
        return super().forward(x)[:, :-1]


class CrossFrameTransformer(nn.Module):
    """A stack of :class:`CrossFrameBlock` (``resblocks``, as CLIP's :class:`Transformer`)."""

    def __init__(self, width: int, layers: int, heads: int, activation: str = "quick_gelu", eps: float = 1e-5):
        super().__init__()
        self.width = width
        self.resblocks = nn.ModuleList(CrossFrameBlock(width, heads, activation, eps) for _ in range(layers))

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, frames)
        return x


class MultiframeIntegration(Transformer):
    """Frame embeddings ``[B, T, D]`` -> video embedding ``[B, D]`` (X-CLIP's ``mit``)."""

    def __init__(self, frames: int, width: int, layers: int, heads: int, activation: str = "quick_gelu",
                 eps: float = 1e-5):
        super().__init__(width, layers, heads, activation, eps)
        self.positional_embedding = nn.Parameter(torch.empty(1, frames, width))

    @property
    def frames(self) -> int:
        return self.positional_embedding.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if x.shape[1] != self.frames:
            raise ValueError(f"this X-CLIP integrates {self.frames} frames per clip, got {x.shape[1]}")
        return (super().forward(x + self.positional_embedding.to(x.dtype)) + x).mean(dim=1)


class CrossAttention(nn.Module):
    """Multi-head attention from queries ``[B, Q, D]`` to other tokens ``[B, M, D]``; q/k/v without
    bias, output projection ``proj`` with bias (the original's names)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise CheckpointError(f"prompt generator width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.q_proj = Linear(width, width, bias=False)
        self.k_proj = Linear(width, width, bias=False)
        self.v_proj = Linear(width, width, bias=False)
        self.proj = Linear(width, width)

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        b, q, width = queries.shape
        head = width // self.heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, -1, self.heads, head).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.q_proj(queries)), split(self.k_proj(tokens)),
                                             split(self.v_proj(tokens)))
        return self.proj(out.transpose(1, 2).reshape(b, q, width))


class PromptGeneratorLayer(nn.Module):
    def __init__(self, width: int, heads: int, activation: str = "quick_gelu", eps: float = 1e-5):
        super().__init__()
        self.cross_attn = CrossAttention(width, heads)
        self.norm1 = LayerNorm(width, eps=eps)
        self.norm3 = LayerNorm(width, eps=eps)
        # Index 2 held a dropout in the original: kept as an identity so the MLP's keys stay mlp.0 / mlp.3.
        self.mlp = nn.Sequential(Linear(width, 4 * width), make_activation(activation), nn.Identity(),
                                 Linear(4 * width, width))

    def forward(self, text: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        text = text + self.cross_attn(self.norm1(text), visual)
        if fastpath.applies():
            fc, activation, proj = cast(nn.Linear, self.mlp[0]), self.mlp[1], cast(nn.Linear, self.mlp[3])
            return fastpath.mlp_residual(self, text, self.norm3(text), fc, activation, proj)
        return text + self.mlp(self.norm3(text))


class PromptGenerator(nn.Module):
    """Text ``[B, Q, D]`` and visual tokens ``[B, M, D]`` -> the video-specific prompt ``[B, Q, D]``
    (to be added to the text)."""

    def __init__(self, width: int, layers: int, heads: int, activation: str = "quick_gelu", eps: float = 1e-5):
        super().__init__()
        self.norm = LayerNorm(width, eps=eps)
        self.decoder = nn.ModuleList(PromptGeneratorLayer(width, heads, activation, eps) for _ in range(layers))
        self.alpha = nn.Parameter(torch.empty(width))

    def forward(self, text: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        visual = self.norm(visual)
        for layer in self.decoder:
            text = layer(text, visual)
        return self.alpha * text
