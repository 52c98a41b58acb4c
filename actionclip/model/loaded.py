"""What every checkpoint reader returns: weights normalised to the names our models use, plus what
the file says about the model (family, frames, config), whatever format it came in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = ["LoadedCheckpoint", "strip_prefix"]


@dataclass
class LoadedCheckpoint:
    """A checkpoint normalised to OpenAI CLIP names + a prefix-free fusion state dict."""

    path: Path
    format: str
    clip_state_dict: dict[str, torch.Tensor]
    fusion_type: str = "meanP"
    fusion_state_dict: dict[str, torch.Tensor] = field(default_factory=dict)
    num_frames: int | None = None  # when the file says; otherwise the registry or the caller decides
    fusion_eps: float = 1e-12  # the original's LayerNorm eps in the Transf head
    clip_overrides: dict[str, Any] = field(default_factory=dict)  # config fields a state dict can't show
    meta: dict[str, Any] = field(default_factory=dict)
    family: str = "actionclip"  # which model family builds it (actionclip.families.FAMILIES)
    config: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides the file carries


def strip_prefix(sd: Mapping[str, Any], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)}
