"""Activations of CLIP-family models, by the name their configs use.

Kept apart from :mod:`actionclip.model.layers` so that the fast path, which rewrites QuickGELU,
can know it without importing the layers that call it.
"""

from __future__ import annotations

import torch
from torch import nn

from actionclip.errors import CheckpointError

QUICK_GELU_SCALE = 1.702


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(QUICK_GELU_SCALE * x)


def make_activation(name: str) -> nn.Module:
    if name == "quick_gelu":
        return QuickGELU()
    if name == "gelu":
        return nn.GELU()
    raise CheckpointError(f"unsupported activation {name!r} (expected quick_gelu or gelu)")
