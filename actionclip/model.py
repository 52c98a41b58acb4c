"""The ActionCLIP video model: CLIP image encoder per frame, a fusion head, CLIP text encoder.

Scoring follows the original test protocol: for every prompt template k and view v,
``softmax over labels of logit_scale * cos(video_v, text_{k,label})``, then the mean over templates
and views. ``logit_scale`` is CLIP's learned temperature capped at 100, which is exactly the fixed 100
the original test script uses for every released checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from actionclip.checkpoints import LoadedCheckpoint, read_checkpoint
from actionclip.clip_model import CLIP
from actionclip.errors import CheckpointError, UsageError
from actionclip.fusion import Fusion, fusion_from_state_dict
from actionclip.templates import check_labels, resolve_templates

if TYPE_CHECKING:
    from actionclip.registry import ModelSpec

DEFAULT_FRAMES = 8
MAX_LOGIT_SCALE = 100.0
TEXT_BATCH = 256

_DTYPES = {
    "fp32": torch.float32, "float32": torch.float32, "float": torch.float32,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
}


def parse_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None`` means fp32 on CPU and fp16 on CUDA."""
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise UsageError(f"unknown dtype {dtype!r}; expected one of fp32, bf16, fp16") from None


class ActionCLIP(nn.Module):
    """A video-text model. Build it with :func:`actionclip.load` / :meth:`from_pretrained`."""

    def __init__(
        self,
        clip: CLIP,
        fusion: Fusion,
        num_frames: int = DEFAULT_FRAMES,
        *,
        name: str | None = None,
        fusion_eps: float = 1e-12,
        source_format: str | None = None,
    ):
        super().__init__()
        fusion.check_frames(num_frames)
        self.clip = clip
        self.fusion = fusion
        self.num_frames = int(num_frames)
        self.name = name
        self.fusion_eps = fusion_eps
        self.source_format = source_format

    # --- construction -----------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype | None = None,
        frames: int | None = None,
    ) -> "ActionCLIP":
        """Load a registry name (downloaded on first use) or a local checkpoint file/folder in any
        supported format. ``frames`` overrides the number of frames sampled per clip."""
        from actionclip.download import resolve

        spec = None if Path(name_or_path).exists() else _registry_spec(str(name_or_path))
        path = resolve(name_or_path)
        model = cls.from_checkpoint(read_checkpoint(path), frames=frames, spec=spec)
        if spec is not None:
            model.name = spec.name
        device = torch.device(device)
        return model.to(device=device, dtype=parse_dtype(dtype, device)).eval()

    @classmethod
    def from_checkpoint(
        cls, ckpt: LoadedCheckpoint, frames: int | None = None, spec: "ModelSpec | None" = None
    ) -> "ActionCLIP":
        num_frames = frames or ckpt.num_frames or (spec.frames if spec else None) or DEFAULT_FRAMES
        if num_frames < 1:
            raise UsageError(f"frames must be at least 1, got {num_frames}")
        try:
            clip = CLIP.from_state_dict(ckpt.clip_state_dict, **ckpt.clip_overrides)
            fusion = fusion_from_state_dict(
                ckpt.fusion_state_dict,
                embed_dim=clip.config.embed_dim,
                heads=max(1, clip.config.text_width // 64),  # the original derives it from the text width
                num_frames=num_frames,
                eps=ckpt.fusion_eps,
                kind=ckpt.fusion_type,
            )
        except CheckpointError as exc:
            raise CheckpointError(f"{ckpt.path}: {exc}") from None
        return cls(clip, fusion, num_frames, name=Path(ckpt.path).name, fusion_eps=ckpt.fusion_eps,
                   source_format=ckpt.format)

    # --- properties -------------------------------------------------------------------------------

    @property
    def fusion_type(self) -> str:
        return self.fusion.kind

    @property
    def input_resolution(self) -> int:
        return self.clip.config.image_resolution

    @property
    def embed_dim(self) -> int:
        return self.clip.config.embed_dim

    @property
    def context_length(self) -> int:
        return self.clip.config.context_length

    @property
    def device(self) -> torch.device:
        return self.clip.logit_scale.device

    @property
    def dtype(self) -> torch.dtype:
        return self.clip.visual.conv1.weight.dtype

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale.float().exp().clamp(max=MAX_LOGIT_SCALE)

    # --- embeddings -------------------------------------------------------------------------------

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images [N, 3, R, R] -> per-frame CLIP embeddings [N, D]."""
        return self.clip.visual(images.to(device=self.device, dtype=self.dtype))

    def fuse(self, frame_embeddings: torch.Tensor) -> torch.Tensor:
        """Frame embeddings [B, T, D] -> video embeddings [B, D]."""
        return self.fusion(frame_embeddings)

    def encode_video(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised clips [B, T, 3, R, R] -> fused video embeddings [B, D] (not L2-normalised)."""
        if pixels.dim() != 5:
            raise ValueError(f"pixels must be [B, T, 3, H, W], got shape {tuple(pixels.shape)}")
        b, t = pixels.shape[:2]
        frames = self.encode_image(pixels.reshape(b * t, *pixels.shape[2:]))
        return self.fuse(frames.view(b, t, -1))

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids [N, context_length] -> text embeddings [N, D]."""
        return self.clip.text(tokens.to(self.device))

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Full prompt strings -> text embeddings [N, D] (not L2-normalised)."""
        from actionclip.tokenizer import tokenize

        if isinstance(texts, str):
            texts = [texts]
        return self.encode_tokens(tokenize(list(texts), context_length=self.context_length))

    @torch.no_grad()
    def encode_labels(self, labels: Sequence[str], templates: Sequence[str] | str | None = None) -> torch.Tensor:
        """Every label inside every template -> L2-normalised embeddings [K templates, L labels, D]."""
        labels = check_labels(labels)
        templates = resolve_templates(templates=templates) if templates is not None else resolve_templates()
        from actionclip.tokenizer import tokenize

        prompts = [t.format(label) for t in templates for label in labels]
        tokens = tokenize(prompts, context_length=self.context_length)
        # Batch prompts of similar length together: the text encoder stops at each batch's longest
        # prompt, so sorting by length saves the padding work (~1.5x for the 16 templates).
        order = torch.argsort(tokens.argmax(dim=-1), stable=True)
        out = torch.empty(len(prompts), self.embed_dim, device=self.device)
        for i in range(0, len(prompts), TEXT_BATCH):
            rows = order[i : i + TEXT_BATCH]
            out[rows.to(self.device)] = self.encode_tokens(tokens[rows]).float()
        return F.normalize(out, dim=-1).view(len(templates), len(labels), -1)

    def probabilities(self, video_embeddings: torch.Tensor, label_embeddings: torch.Tensor) -> torch.Tensor:
        """Video embeddings [B, D] or [B, V, D] (V views) and label embeddings [K, L, D] -> [B, L].

        Softmax over labels of ``logit_scale * cos`` per template and view, then the mean."""
        video = video_embeddings.float()
        if video.dim() == 2:
            video = video[:, None]
        video = F.normalize(video, dim=-1)
        text = F.normalize(label_embeddings.float().to(video.device), dim=-1)
        logits = self.logit_scale.to(video.device) * torch.einsum("bvd,kld->bvkl", video, text)
        return logits.softmax(dim=-1).mean(dim=(1, 2))

    # --- whole videos -----------------------------------------------------------------------------

    def prepare_video(
        self,
        video: Any,
        *,
        frames: int | None = None,
        clips: int = 1,
        crops: int = 1,
        mode: str = "center",
        start: float | None = None,
        end: float | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        """A path, uint8 RGB frames [N, H, W, 3], or normalised pixels [T, 3, R, R] / [V, T, 3, R, R]
        -> normalised views [V, T, 3, R, R] (V = clips x crops)."""
        from actionclip.preprocess import preprocess_frames

        frames = frames or self.num_frames
        if isinstance(video, (str, os.PathLike)):
            from actionclip.video import read_video

            raw = read_video(video, frames=frames, clips=clips, mode=mode, start=start, end=end, seed=seed)
        else:
            if isinstance(video, torch.Tensor) and video.is_floating_point():
                pixels = video if video.dim() == 5 else video[None]
                return pixels
            raw = np.asarray(video.cpu() if isinstance(video, torch.Tensor) else video)
            if raw.dtype != np.uint8 or raw.ndim != 4 or raw.shape[-1] != 3:
                raise UsageError(
                    f"frames must be uint8 RGB [N, H, W, 3] (or a normalised float tensor), got {raw.dtype} {raw.shape}"
                )
            from actionclip.video import sample_indices

            # Decoded frames are sampled exactly as a file would be: C clips of T frames each.
            rng = np.random.default_rng(seed)
            raw = np.stack([
                raw[sample_indices(raw.shape[0], frames, mode, clip=c, clips=clips, rng=rng)] for c in range(clips)
            ])
        pixels = preprocess_frames(raw, resolution=self.input_resolution, crops=crops)
        return pixels.reshape(-1, *pixels.shape[-4:])

    @torch.inference_mode()
    def classify(
        self,
        video: Any,
        labels: Sequence[str],
        *,
        templates: Sequence[str] | str | None = None,
        frames: int | None = None,
        clips: int = 1,
        crops: int = 1,
        mode: str = "center",
        start: float | None = None,
        end: float | None = None,
        seed: int | None = None,
        label_embeddings: torch.Tensor | None = None,
    ) -> list[tuple[str, float]]:
        """Rank ``labels`` for one video: [(label, probability), ...], highest first, all labels.

        ``label_embeddings`` (from :meth:`encode_labels`) skips the text encoder when classifying many
        videos with the same labels."""
        labels = check_labels(labels)
        if label_embeddings is None:
            label_embeddings = self.encode_labels(labels, templates)
        pixels = self.prepare_video(
            video, frames=frames, clips=clips, crops=crops, mode=mode, start=start, end=end, seed=seed
        )
        embeddings = self.encode_video(pixels)  # [V, D]
        probs = self.probabilities(embeddings[None], label_embeddings)[0].tolist()
        return sorted(zip(labels, probs), key=lambda pair: -pair[1])

    def timeline(self, video: Any, labels: Sequence[str], **options: Any) -> Any:
        """When each action happens in a long video: see :func:`actionclip.timeline.timeline`."""
        from actionclip.timeline import timeline

        return timeline(self, video, labels, **options)

    def watch(self, source: Any, labels: Sequence[str], **options: Any) -> Iterator[Any]:
        """Follow a live stream: see :func:`actionclip.live.watch`."""
        from actionclip.live import watch

        return watch(self, source, labels, **options)


def _registry_spec(name: str) -> "ModelSpec | None":
    from actionclip.registry import get_spec

    try:
        return get_spec(name)
    except UsageError:
        return None  # resolve() reports unknown names with suggestions


def load(
    name_or_path: str | os.PathLike,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    frames: int | None = None,
) -> ActionCLIP:
    """Load a model by registry name (e.g. ``"vit-b-32-8f"``) or local path. See
    :meth:`ActionCLIP.from_pretrained`."""
    return ActionCLIP.from_pretrained(name_or_path, device=device, dtype=dtype, frames=frames)
