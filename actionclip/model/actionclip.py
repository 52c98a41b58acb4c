"""The ActionCLIP video model: CLIP's image encoder per frame, a temporal fusion head, CLIP's text
encoder (Wang, Xing & Liu, 2021). Bare OpenAI CLIP is the same model with mean pooling (``meanP``).

Scoring follows the original test protocol (:mod:`actionclip.model.scoring`): for every prompt
template k and view v, ``softmax over labels of logit_scale * cos(video_v, text_{k,label})``, then the
mean over templates and views. ``logit_scale`` is CLIP's learned temperature capped at 100, which is
exactly the fixed 100 the original test script uses for every released checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from actionclip.errors import CheckpointError
from actionclip.model import cuda
from actionclip.model.clip import CLIP
from actionclip.model.config import ModelConfig
from actionclip.model.fusion import Fusion, fusion_from_state_dict
from actionclip.model.module import VideoModule

if TYPE_CHECKING:
    from actionclip.model.loaded import LoadedCheckpoint

__all__ = ["ActionCLIP"]

DEFAULT_FRAMES = 8


class ActionCLIP(VideoModule):
    """A CLIP-based video-text model. Build it with :func:`actionclip.load`."""

    family = "actionclip"

    def __init__(
        self,
        clip: CLIP,
        fusion: Fusion,
        config: ModelConfig | int = DEFAULT_FRAMES,
        *,
        name: str | None = None,
        fusion_eps: float = 1e-12,
        source_format: str | None = None,
    ):
        super().__init__()
        if isinstance(config, int):  # ActionCLIP(clip, fusion, num_frames)
            config = ModelConfig(frames=config)
        config = config.for_weights(clip.config.image_resolution)
        fusion.check_frames(config.frames)
        self.clip = clip
        self.fusion = fusion
        self.config = config
        self.name = name
        self.fusion_eps = fusion_eps
        self.source_format = source_format

    # --- construction -----------------------------------------------------------------------------

    @classmethod
    def from_checkpoint(cls, ckpt: LoadedCheckpoint, config: ModelConfig) -> ActionCLIP:
        """Build from a read checkpoint; ``config.frames`` is the number of frames per clip."""
        try:
            clip = CLIP.from_state_dict(ckpt.clip_state_dict, **ckpt.clip_overrides)
            fusion = fusion_from_state_dict(
                ckpt.fusion_state_dict,
                embed_dim=clip.config.embed_dim,
                heads=max(1, clip.config.text_width // 64),  # the original derives it from the text width
                num_frames=config.frames,
                eps=ckpt.fusion_eps,
                kind=ckpt.fusion_type,
            )
        except CheckpointError as exc:
            raise CheckpointError(f"{ckpt.path}: {exc}") from None
        return cls(clip, fusion, config, name=Path(ckpt.path).name, fusion_eps=ckpt.fusion_eps,
                   source_format=ckpt.format)

    # --- properties -------------------------------------------------------------------------------

    @property
    def fusion_type(self) -> str:
        return self.fusion.kind

    @property
    def embed_dim(self) -> int:
        return self.clip.config.embed_dim

    @property
    def context_length(self) -> int:
        return self.clip.config.context_length

    @property
    def logit_scale_param(self) -> torch.Tensor:
        return self.clip.logit_scale

    @property
    def dtype(self) -> torch.dtype:
        return self.clip.visual.conv1.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.clip.logit_scale.device

    # --- embeddings -------------------------------------------------------------------------------

    def encode_image(self, images: Any) -> torch.Tensor:
        """Normalised images ``[N, 3, R, R]`` -> per-frame CLIP embeddings ``[N, D]``."""
        return self.clip.visual(self._input(images))

    def fuse(self, frame_embeddings: Any) -> torch.Tensor:
        """Frame embeddings ``[B, T, D]`` -> video embeddings ``[B, D]``."""
        return self.fusion(self._input(frame_embeddings))

    def encode_video(self, pixels: Any) -> torch.Tensor:
        """Normalised clips ``[B, T, 3, R, R]`` -> fused video embeddings ``[B, D]`` (not L2-normalised)."""
        if pixels.ndim != 5:
            raise ValueError(f"pixels must be [B, T, 3, H, W], got shape {tuple(pixels.shape)}")
        return cuda.run(self, "video", self._encode_video, self._input(pixels))  # eager off CUDA

    def _encode_video(self, pixels: torch.Tensor) -> torch.Tensor:
        b, t = pixels.shape[:2]
        frames = self.encode_image(pixels.reshape(b * t, *pixels.shape[2:]))
        return self.fuse(frames.view(b, t, -1))

    def encode_tokens(self, tokens: Any) -> torch.Tensor:
        """Token ids ``[N, context_length]`` -> text embeddings ``[N, D]`` (not L2-normalised)."""
        return self.clip.text(self._input(tokens, floating=False))

