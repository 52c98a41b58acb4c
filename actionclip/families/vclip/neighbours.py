"""Attention across neighbouring frames: CLIP's image tower made temporal without a new parameter.

Open-VCLIP (and FROSTER, trained from it) change one thing in CLIP's image encoder: in every block,
the tokens of frame ``t`` attend not only to the keys and values of frame ``t`` but also to those of
frames ``t + 1`` and ``t - 1`` of the same clip (``expand_temporal_view`` in their code). The
projections are CLIP's own, so a CLIP state dict loads unchanged. The rule, as their attention
function applies it:

* each head separately; every token, the class token included, sees all tokens of the three frames;
* at the clip's ends the missing neighbour is *zeros*, not dropped: L keys and values equal to 0
  after projection, each scoring ``q . 0 = 0`` in the softmax and adding nothing to the output;
* frames are grouped by clip along the batch (``[B * T, ...]``, frame-major within a clip), with the
  number of frames T fixed per call.

:class:`NeighbourAttention` is :class:`~actionclip.model.layers.SelfAttention` with those extra keys
(its :meth:`extend_keys` hook), so the fast inference path and the state-dict names are the parent's.
T reaches the blocks through :func:`clip_frames`, a context variable set around one image-tower call:
the blocks keep their generic signature and concurrent calls (threads) each see their own T.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import torch
from torch import nn

from actionclip.model.layers import SelfAttention

__all__ = ["NeighbourAttention", "clip_frames", "use_neighbour_attention", "with_neighbours"]

_FRAMES: ContextVar[int | None] = ContextVar("actionclip_neighbour_frames", default=None)


@contextlib.contextmanager
def clip_frames(frames: int) -> Iterator[None]:
    """Within the block, image-tower batches are clips of ``frames`` consecutive frames."""
    token = _FRAMES.set(int(frames))
    try:
        yield
    finally:
        _FRAMES.reset(token)


def with_neighbours(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Per-head keys (or values) ``[B*T, H, L, d]`` -> ``[B*T, H, 3L, d]``: the next frame's, the
    previous frame's (zeros past either end of the clip), then the frame's own."""
    bt, heads, length, dim = x.shape
    if bt % frames:
        raise ValueError(f"{bt} images are not whole clips of {frames} frames")
    x = x.view(bt // frames, frames, heads, length, dim)
    zeros = x.new_zeros(x.shape[0], 1, heads, length, dim)
    following = torch.cat([x[:, 1:], zeros], dim=1)
    preceding = torch.cat([zeros, x[:, :-1]], dim=1)
    return torch.cat([following, preceding, x], dim=3).view(bt, heads, 3 * length, dim)


class NeighbourAttention(SelfAttention):
    """Self-attention whose keys and values also come from the neighbouring frames of the clip."""

    def extend_keys(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = _FRAMES.get()
        if frames is None:
            raise RuntimeError("neighbour attention needs the clip length: call the image tower inside clip_frames(T)")
        return with_neighbours(keys, frames), with_neighbours(values, frames)


def use_neighbour_attention(tower: nn.Module) -> None:
    """Make every block of ``tower`` (a :class:`~actionclip.model.layers.Transformer`) attend across
    neighbouring frames, keeping its parameters (the same tensors, the same state-dict names)."""
    for block in tower.resblocks:
        old = block.attn
        if isinstance(old, NeighbourAttention):
            continue
        new = NeighbourAttention(old.in_proj_weight.shape[1], old.heads)
        new.in_proj_weight, new.in_proj_bias, new.out_proj = old.in_proj_weight, old.in_proj_bias, old.out_proj
        block.attn = new
