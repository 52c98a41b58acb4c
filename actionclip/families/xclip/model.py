"""X-CLIP (Ni et al., 2022): CLIP whose frames talk inside the image tower, a multi-frame integration
transformer over the frame embeddings, and text prompts conditioned on the video.

For a clip of T frames (:mod:`actionclip.families.xclip.layers` has the pieces)::

    frame embeddings, patch tokens = cross-frame image tower(frames)         [B*T, D], [B*T, N, W]
    video  = mit(frame embeddings)                                           [B, D]
    tokens = mean over frames of (prompts_visual_ln(patch tokens) @ prompts_visual_proj)   [B, N, D]
    text'  = text + prompts_generator(text, tokens)     per video, text unnormalised      [B, L, D]
    logit  = exp(logit_scale) * cos(video, text')

How that fits the contract of :class:`~actionclip.model.base.VideoTextModel`:

* ``encode_video`` returns :class:`~actionclip.model.scoring.VideoFeatures` ``(embedding=video,
  tokens=tokens)``: everything the scores of a clip need, so that features of videos (and of views,
  ``[B, V, ...]``) may be stored and scored later against any labels: both fields go to numpy and
  back unchanged (``map_features(features, lambda t, _: model.ops.to_numpy(t))``), and ``logits``
  takes numpy fields as they are.
* ``encode_labels`` keeps the text embeddings unnormalised (the generator adds to them), one template
  (X-CLIP's prompt is the bare label, ``"{}"``).
* ``logits`` runs the prompt generator for every video and view, then the cosine; each text query is
  independent of the others in the generator, so labels may be scored in any grouping.
* ``frame_independent`` is False: a frame's embedding depends on its clip, so timelines encode each
  window whole.

``exp(logit_scale)`` is not capped (X-CLIP's config, actionclip/families/xclip.py, sets
``max_logit_scale`` to ``UNCAPPED_LOGIT_SCALE``): the original and ``transformers`` use the learned value as it is.

Parameter names are the original release's (``visual.transformer.resblocks.N.message_attn``,
``mit.*``, ``prompts_generator.*``, ``prompts_visual_ln``, ``prompts_visual_proj``, text at the top
level); :class:`XCLIPNetwork` holds them with the text tower under ``text.`` (as
:class:`~actionclip.model.clip.CLIP` does). The architecture is inferred from tensor shapes
(:meth:`XCLIPArch.from_state_dict`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from actionclip.errors import CheckpointError, UsageError
from actionclip.families.xclip.layers import CrossFrameTransformer, MultiframeIntegration, PromptGenerator
from actionclip.model import cuda
from actionclip.model.clip import NON_WEIGHT_KEYS, CLIPConfig, TextTransformer, VisionTransformer
from actionclip.model.config import ModelConfig
from actionclip.model.layers import LayerNorm, count_layers, load_state_dict_checked
from actionclip.model.module import VideoModule
from actionclip.model.scoring import VideoFeatures

if TYPE_CHECKING:
    from actionclip.model.loaded import LoadedCheckpoint

__all__ = ["XCLIP", "XCLIPArch", "XCLIPNetwork"]

# Keys of the original release that stay at the top level in our module tree (the rest is text).
_TOP_PREFIXES = ("visual.", "mit.", "prompts_generator.", "prompts_visual_ln.")
_TOP_KEYS = ("prompts_visual_proj", "logit_scale")

# (video, prompt) rows per prompt-generator call: bounds its [rows, 4D] MLP activation (~130 MB
# in fp32 for D = 512) when thousands of labels meet a batch of videos.
_GENERATOR_ROWS = 16384


@dataclass(frozen=True)
class XCLIPArch:
    """X-CLIP's architecture: CLIP's, plus the integration transformer and the prompt generator."""

    clip: CLIPConfig
    frames: int  # rows of the mit position table: the clip length the weights were trained for
    mit_layers: int
    mit_heads: int
    prompt_layers: int
    prompt_heads: int
    prompt_activation: str = "quick_gelu"

    @classmethod
    def from_state_dict(cls, sd: Mapping[str, torch.Tensor], overrides: Mapping[str, Any] | None = None) -> XCLIPArch:
        """Infer the architecture from an original-named state dict, as the original's ``build_model``
        does (heads = width / 64). ``overrides`` may set any field of this class or of
        :class:`CLIPConfig` (a Hugging Face config states heads, activation and eps)."""
        overrides = dict(overrides or {})
        clip_fields = {f.name for f in fields(CLIPConfig)}
        clip = replace(CLIPConfig.from_state_dict(sd), **{k: v for k, v in overrides.items() if k in clip_fields})
        try:
            mit_table = sd["mit.positional_embedding"]
            width = sd["prompts_generator.alpha"].shape[0]
        except KeyError as exc:
            raise CheckpointError(f"not an X-CLIP state dict: missing key {exc.args[0]!r}") from None
        arch = cls(
            clip=clip,
            frames=mit_table.shape[1],
            mit_layers=count_layers(sd, "mit.resblocks."),
            mit_heads=max(1, mit_table.shape[2] // 64),
            prompt_layers=count_layers(sd, "prompts_generator.decoder."),
            prompt_heads=max(1, width // 64),
        )
        return replace(arch, **{k: v for k, v in overrides.items() if k not in clip_fields})


class CrossFrameVision(VisionTransformer):
    """CLIP's image tower with cross-frame blocks: frames ``[B*T, 3, R, R]`` -> frame embeddings
    ``[B*T, D]`` and the final patch tokens ``[B*T, N, W]`` (neither normed nor projected)."""

    def __init__(self, cfg: CLIPConfig):
        super().__init__(cfg)
        self.transformer = CrossFrameTransformer(cfg.vision_width, cfg.vision_layers, cfg.vision_heads,
                                                 cfg.activation, cfg.layer_norm_eps)

    def forward(self, images: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        x = self.transformer(self.embed(images), frames)
        return self.pool(x), x[:, 1:]


class XCLIPNetwork(nn.Module):
    """The X-CLIP weights and their maths; :class:`XCLIP` wraps it in the model contract."""

    def __init__(self, arch: XCLIPArch):
        super().__init__()
        cfg = arch.clip
        self.arch = arch
        self.visual = CrossFrameVision(cfg)
        self.text = TextTransformer(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.mit = MultiframeIntegration(arch.frames, cfg.embed_dim, arch.mit_layers, arch.mit_heads, cfg.activation,
                                         cfg.layer_norm_eps)
        self.prompts_generator = PromptGenerator(cfg.embed_dim, arch.prompt_layers, arch.prompt_heads,
                                                 arch.prompt_activation, cfg.layer_norm_eps)
        self.prompts_visual_ln = LayerNorm(cfg.vision_width, eps=cfg.layer_norm_eps)
        self.prompts_visual_proj = nn.Parameter(torch.empty(cfg.vision_width, cfg.embed_dim))

    @classmethod
    def from_state_dict(cls, sd: Mapping[str, torch.Tensor],
                        overrides: Mapping[str, Any] | None = None) -> XCLIPNetwork:
        """Build from an original-named state dict (the release's ``checkpoint["model"]``)."""
        net = cls(XCLIPArch.from_state_dict(sd, overrides))
        net.load_original_state_dict(sd)
        return net

    def load_original_state_dict(self, sd: Mapping[str, torch.Tensor]) -> None:
        ours = {}
        for key, value in sd.items():
            if key in NON_WEIGHT_KEYS:
                continue
            top = key.startswith(_TOP_PREFIXES) or key in _TOP_KEYS
            ours[key if top else f"text.{key}"] = value
        load_state_dict_checked(self, ours, what="X-CLIP")

    def original_state_dict(self) -> OrderedDict[str, torch.Tensor]:
        """State dict in the original release's naming (text keys at the top level)."""
        return OrderedDict(
            (k[len("text."):] if k.startswith("text.") else k, v) for k, v in self.state_dict().items()
        )

    # --- the maths ---------------------------------------------------------------------------------

    def encode_video(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clips ``[B, T, 3, R, R]`` -> video embeddings ``[B, D]`` and visual tokens ``[B, N, D]``."""
        b, t = pixels.shape[:2]
        if t != self.mit.frames:
            raise UsageError(f"this X-CLIP model takes {self.mit.frames} frames per clip (its weights are "
                             f"built for that many), got {t}")
        frame_emb, patches = self.visual(pixels.reshape(b * t, *pixels.shape[2:]), t)
        # The projection is linear, so it may follow the mean over frames (T times fewer FLOPs).
        patches = self.prompts_visual_ln(patches)
        tokens = patches.view(b, t, *patches.shape[1:]).mean(dim=1) @ self.prompts_visual_proj
        return self.mit(frame_emb.view(b, t, -1)), tokens

    def video_text(self, text: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Text embeddings ``[Q, D]`` (unnormalised) conditioned on each video's tokens ``[B, N, D]``
        -> ``[B, Q, D]``."""
        queries = text.to(tokens.dtype).unsqueeze(0).expand(tokens.shape[0], -1, -1)
        return queries + self.prompts_generator(queries, tokens)


class XCLIP(VideoModule):
    """An X-CLIP video-text model. Build it with :func:`actionclip.load`."""

    family = "xclip"
    fusion_type = "mit"  # how frames become a video: the multi-frame integration transformer
    frame_independent = False
    cosine_scoring = False  # logits of its own (see logits)
    onnx_export_error = ("ONNX export writes ActionCLIP's three graphs (per-frame image tower, fusion head, "
                         "text tower); an xclip model needs others (its frames interact inside the image "
                         "tower and its text depends on the video), which are not written yet")

    def __init__(self, net: XCLIPNetwork, config: ModelConfig, *, name: str | None = None,
                 source_format: str | None = None):
        """``config``: X-CLIP's conventions (``actionclip.families.xclip.default_config()``) with the frames."""
        super().__init__()
        if config.frames != net.mit.frames:
            raise UsageError(f"frames={config.frames}: this X-CLIP model integrates exactly {net.mit.frames} "
                             "frames per clip (its weights are built for that many)")
        config = config.for_weights(net.arch.clip.image_resolution)
        self.xclip = net
        self.config = config
        self.name = name
        self.source_format = source_format

    @classmethod
    def from_checkpoint(cls, ckpt: LoadedCheckpoint, config: ModelConfig) -> XCLIP:
        try:
            net = XCLIPNetwork.from_state_dict(ckpt.clip_state_dict, ckpt.clip_overrides)
        except CheckpointError as exc:
            raise CheckpointError(f"{ckpt.path}: {exc}") from None
        try:
            return cls(net, config, name=Path(ckpt.path).name, source_format=ckpt.format)
        except UsageError as exc:
            raise UsageError(f"{ckpt.path}: {exc}") from None

    # --- properties -------------------------------------------------------------------------------

    @property
    def embed_dim(self) -> int:
        return self.xclip.arch.clip.embed_dim

    @property
    def context_length(self) -> int:
        return self.xclip.arch.clip.context_length

    @property
    def logit_scale_param(self) -> torch.Tensor:
        return self.xclip.logit_scale

    @property
    def dtype(self) -> torch.dtype:
        return self.xclip.visual.conv1.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.xclip.logit_scale.device

    # --- the contract -----------------------------------------------------------------------------

    def encode_video(self, pixels: Any) -> VideoFeatures:
        """Normalised clips ``[B, T, 3, R, R]`` -> ``VideoFeatures(embedding [B, D], tokens [B, N, D])``
        (the video embedding from the integration transformer, not L2-normalised; the mean visual
        tokens the prompt generator attends to)."""
        if pixels.ndim != 5:
            raise ValueError(f"pixels must be [B, T, 3, H, W], got shape {tuple(pixels.shape)}")
        embedding, tokens = cuda.run(self, "video", self.xclip.encode_video, self._input(pixels))
        return VideoFeatures(embedding=embedding, tokens=tokens)

    def encode_tokens(self, tokens: Any) -> torch.Tensor:
        """Token ids ``[N, context_length]`` -> text embeddings ``[N, D]`` (not L2-normalised)."""
        return self.xclip.text(self._input(tokens, floating=False))

    def _label_features(self, embeddings: Any) -> Any:
        return embeddings  # the prompt generator adds to the raw text embeddings

    def logits(self, video_features: Any, label_features: Any) -> torch.Tensor:
        """``VideoFeatures`` with leading ``[B]`` or ``[B, V]`` and raw text ``[K, L, D]`` ->
        ``[B, V, K, L]``: each video's (view's) prompts generated, then ``logit_scale * cos``."""
        if not isinstance(video_features, VideoFeatures) or video_features.tokens is None:
            raise UsageError("X-CLIP scores video features from its own encode_video (embedding and tokens)")
        embedding = self._input(video_features.embedding)
        tokens = self._input(video_features.tokens)
        if embedding.ndim == 2:
            embedding, tokens = embedding[:, None], tokens[:, None]
        b, v, d = embedding.shape
        text = self._input(label_features)
        k, n_labels = text.shape[:2]
        queries = text.reshape(k * n_labels, d)
        flat_tokens = tokens.reshape(b * v, *tokens.shape[2:])
        videos = F.normalize(embedding.reshape(b * v, d).float(), dim=-1)
        scale = float(self.logit_scale.detach())
        parts = []
        chunk = max(1, _GENERATOR_ROWS // (b * v))
        for start in range(0, len(queries), chunk):
            conditioned = self.xclip.video_text(queries[start:start + chunk], flat_tokens)  # [B*V, Q, D]
            parts.append(scale * torch.einsum("nd,nqd->nq", videos, F.normalize(conditioned.float(), dim=-1)))
        return torch.cat(parts, dim=-1).view(b, v, k, n_labels)
