"""CLIP image and text encoders (ViT), architecture inferred from a state dict.

Parameter names follow OpenAI's CLIP release exactly (``visual.conv1.weight``,
``transformer.resblocks.0.attn.in_proj_weight``, ``text_projection`` ...), so an OpenAI,
ActionCLIP or mmaction2 state dict loads without renaming. The only difference in the module tree is
that the text tower lives under ``text.``; :meth:`CLIP.load_openai_state_dict` and
:meth:`CLIP.openai_state_dict` translate. The blocks themselves are :mod:`actionclip.model.layers`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch
from torch import nn

from actionclip.errors import CheckpointError
from actionclip.model import fastpath
from actionclip.model.layers import Conv2d, Embedding, LayerNorm, Transformer, count_layers, load_state_dict_checked

# Keys OpenAI's TorchScript archives carry as attributes; they hold no weights.
NON_WEIGHT_KEYS = ("input_resolution", "context_length", "vocab_size")


@dataclass(frozen=True)
class CLIPConfig:
    embed_dim: int
    image_resolution: int
    vision_width: int
    vision_layers: int
    vision_heads: int
    vision_patch_size: int
    context_length: int
    vocab_size: int
    text_width: int
    text_layers: int
    text_heads: int
    activation: str = "quick_gelu"  # OpenAI CLIP; "gelu" for some Hugging Face exports
    layer_norm_eps: float = 1e-5

    @classmethod
    def from_state_dict(cls, sd: Mapping[str, torch.Tensor]) -> CLIPConfig:
        """Infer the architecture from tensor shapes, as OpenAI's ``build_model`` does."""
        if "visual.layer1.0.conv1.weight" in sd:
            raise CheckpointError("ResNet CLIP backbones are not supported (only ViT)")
        try:
            vision_width = sd["visual.conv1.weight"].shape[0]
            patch = sd["visual.conv1.weight"].shape[-1]
            grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
            text_width = sd["ln_final.weight"].shape[0]
            return cls(
                embed_dim=sd["text_projection"].shape[1],
                image_resolution=grid * patch,
                vision_width=vision_width,
                vision_layers=count_layers(sd, "visual.transformer.resblocks."),
                vision_heads=max(1, vision_width // 64),
                vision_patch_size=patch,
                context_length=sd["positional_embedding"].shape[0],
                vocab_size=sd["token_embedding.weight"].shape[0],
                text_width=text_width,
                text_layers=count_layers(sd, "transformer.resblocks."),
                text_heads=max(1, text_width // 64),
            )
        except KeyError as exc:
            raise CheckpointError(f"not a CLIP ViT state dict: missing key {exc.args[0]!r}") from None


class VisionTransformer(nn.Module):
    """Images [N, 3, R, R] (CLIP-normalised) -> embeddings [N, embed_dim]."""

    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        width, patch = cfg.vision_width, cfg.vision_patch_size
        self.input_resolution = cfg.image_resolution
        self.conv1 = Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(width))
        self.positional_embedding = nn.Parameter(torch.empty((cfg.image_resolution // patch) ** 2 + 1, width))
        self.ln_pre = LayerNorm(width, eps=cfg.layer_norm_eps)
        self.transformer: nn.Module = Transformer(width, cfg.vision_layers, cfg.vision_heads, cfg.activation,
                                                 cfg.layer_norm_eps)
        self.ln_post = LayerNorm(width, eps=cfg.layer_norm_eps)
        self.proj = nn.Parameter(torch.empty(width, cfg.embed_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(self.transformer(self.embed(images)))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Images -> the tokens the transformer takes ``[N, 1 + g*g, W]`` (class token first)."""
        if images.shape[-2:] != (self.input_resolution, self.input_resolution):
            raise ValueError(
                f"images must be {self.input_resolution}x{self.input_resolution}, got {tuple(images.shape[-2:])}"
            )
        images = images.to(self.conv1.weight.dtype)
        if fastpath.applies():
            x = fastpath.patch_tokens(self.conv1, images)
        else:
            x = self.conv1(images).flatten(2).transpose(1, 2)  # [N, W, g, g] -> [N, g*g, W]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        return self.ln_pre(x)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """The transformer's output tokens -> the image embedding (class token, normed, projected)."""
        return self.ln_post(tokens[:, 0]) @ self.proj


class TextTransformer(nn.Module):
    """Token ids [N, context_length] -> embeddings [N, embed_dim], pooled at the end token."""

    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.context_length = cfg.context_length
        self.token_embedding = Embedding(cfg.vocab_size, cfg.text_width)
        self.positional_embedding = nn.Parameter(torch.empty(cfg.context_length, cfg.text_width))
        self.transformer = Transformer(cfg.text_width, cfg.text_layers, cfg.text_heads, cfg.activation, cfg.layer_norm_eps)
        self.ln_final = LayerNorm(cfg.text_width, eps=cfg.layer_norm_eps)
        self.text_projection = nn.Parameter(torch.empty(cfg.text_width, cfg.embed_dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # The end-of-text token has the largest id in CLIP's vocabulary, so argmax finds it.
        eot = tokens.argmax(dim=-1)
        if tokens.shape[0] and not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            # Attention is causal and the output is read at the end token, so positions after the
            # batch's last end token cannot change it: drop them (exact; prompts are ~10 of 77
            # tokens, so ~6x less work). Not while tracing/compiling, where shapes must stay symbolic.
            tokens = tokens[:, : int(eot.max()) + 1]
        x = self.token_embedding(tokens) + self.positional_embedding[: tokens.shape[1]]
        x = self.ln_final(self.transformer(x, causal=True))
        return x[torch.arange(x.shape[0], device=x.device), eot] @ self.text_projection


class CLIP(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.config = cfg
        self.visual = VisionTransformer(cfg)
        self.text = TextTransformer(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @classmethod
    def from_state_dict(cls, sd: Mapping[str, torch.Tensor], **overrides) -> CLIP:
        """Build from an OpenAI-named state dict; ``overrides`` replace inferred config fields."""
        cfg = replace(CLIPConfig.from_state_dict(sd), **overrides)
        # Built on the CPU with uninitialised storage (the layers skip random init), then the
        # checkpoint's tensors are assigned. (The meta device would avoid even the allocation, but its
        # first use imports torch._dynamo, two seconds on every CLI start.)
        model = cls(cfg)
        model.load_openai_state_dict(sd)
        return model

    def load_openai_state_dict(self, sd: Mapping[str, torch.Tensor]) -> None:
        ours = {}
        for key, value in sd.items():
            if key in NON_WEIGHT_KEYS:
                continue
            ours[key if key.startswith("visual.") or key == "logit_scale" else f"text.{key}"] = value
        load_state_dict_checked(self, ours, what="CLIP")

    def openai_state_dict(self) -> OrderedDict[str, torch.Tensor]:
        """State dict in OpenAI's naming (text keys at the top level)."""
        return OrderedDict(
            (k[len("text."):] if k.startswith("text.") else k, v) for k, v in self.state_dict().items()
        )

    def initialize_parameters(self, generator: torch.Generator | None = None) -> None:
        """Random initialisation following OpenAI's scheme (used for random test/benchmark checkpoints)."""
        cfg = self.config

        def normal_(t: torch.Tensor, std: float) -> None:
            with torch.no_grad():
                t.copy_(torch.randn(t.shape, generator=generator) * std)

        normal_(self.text.token_embedding.weight, 0.02)
        normal_(self.text.positional_embedding, 0.01)
        normal_(self.visual.class_embedding, cfg.vision_width**-0.5)
        normal_(self.visual.positional_embedding, cfg.vision_width**-0.5)
        normal_(self.visual.conv1.weight, (3 * cfg.vision_patch_size**2) ** -0.5)
        for tower, width, layers in (
            (self.visual.transformer, cfg.vision_width, cfg.vision_layers),
            (self.text.transformer, cfg.text_width, cfg.text_layers),
        ):
            proj_std = width**-0.5 * (2 * layers) ** -0.5
            for block in tower.resblocks:
                normal_(block.attn.in_proj_weight, width**-0.5)
                normal_(block.attn.out_proj.weight, proj_std)
                normal_(block.mlp.c_fc.weight, (2 * width) ** -0.5)
                normal_(block.mlp.c_proj.weight, proj_std)
        normal_(self.visual.proj, cfg.vision_width**-0.5)
        normal_(self.text.text_projection, cfg.text_width**-0.5)
        # Non-trivial norms and biases, so that parity tests would catch a dropped bias or a swapped norm.
        for name, param in self.named_parameters():
            if name.endswith("bias") or ".ln" in name or name.startswith(("visual.ln", "text.ln")):
                base = 1.0 if name.endswith("weight") else 0.0
                with torch.no_grad():
                    param.copy_(base + torch.randn(param.shape, generator=generator) * 0.05)
