"""Random checkpoints in every real format, for tests (tiny) and benchmarks (full size).

No pretrained weights can be downloaded where this project is developed, so correctness is shown by
parity on random weights: each format written here is what the real files look like (same keys,
nesting, dtypes, and for OpenAI a real TorchScript archive; for Hugging Face a folder saved by
``transformers`` itself), and full-size random checkpoints have the real models' size and FLOPs.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from actionclip.model.clip import CLIP, CLIPConfig
from actionclip.model.fusion import ORIGINAL_POSITION_ROWS, new_fusion

SIZES: dict[str, CLIPConfig] = {
    # Two heads per tower (width 128) so multi-head reshapes are exercised; full vocabulary and
    # context so the real tokenizer's ids fit.
    "tiny": CLIPConfig(
        embed_dim=64, image_resolution=32, vision_width=128, vision_layers=2, vision_heads=2,
        vision_patch_size=8, context_length=77, vocab_size=49408, text_width=128, text_layers=2, text_heads=2,
    ),
    "B/32": CLIPConfig(
        embed_dim=512, image_resolution=224, vision_width=768, vision_layers=12, vision_heads=12,
        vision_patch_size=32, context_length=77, vocab_size=49408, text_width=512, text_layers=12, text_heads=8,
    ),
    "B/16": CLIPConfig(
        embed_dim=512, image_resolution=224, vision_width=768, vision_layers=12, vision_heads=12,
        vision_patch_size=16, context_length=77, vocab_size=49408, text_width=512, text_layers=12, text_heads=8,
    ),
    "L/14": CLIPConfig(
        embed_dim=768, image_resolution=224, vision_width=1024, vision_layers=24, vision_heads=16,
        vision_patch_size=14, context_length=77, vocab_size=49408, text_width=768, text_layers=12, text_heads=12,
    ),
    # L/14's image width and patch (what tells Open-VCLIP's 0.6 interpolation ratio), on a 2x2 grid
    # with two blocks and the tiny text tower: the L/14 rules at a test's cost.
    "tiny-L/14": CLIPConfig(
        embed_dim=64, image_resolution=28, vision_width=1024, vision_layers=2, vision_heads=16,
        vision_patch_size=14, context_length=77, vocab_size=49408, text_width=128, text_layers=2, text_heads=2,
    ),
}
FORMATS = ("actionclip", "mmaction2", "openai", "openai-jit", "hf")


def random_clip(size: str = "tiny", seed: int = 0) -> CLIP:
    model = CLIP(SIZES[size])
    model.initialize_parameters(torch.Generator().manual_seed(seed))
    with torch.no_grad():
        model.logit_scale.fill_(4.6052)  # CLIP's released temperature, exp() == 100
    return model


def random_fusion(kind: str, embed_dim: int, heads: int, frames: int, *, position_rows: int | None, eps: float,
                  seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    head = new_fusion(kind, embed_dim, heads, frames, position_rows=position_rows, eps=eps)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in head.named_parameters():
            if name == "shift.weight":
                continue  # keep the original's fixed shift pattern
            # Random, non-trivial values everywhere (norm weights near 1), so parity would catch any slip.
            scale = 0.05 if ("norm" in name or ".ln_" in name or name.endswith("bias")) else 0.05
            base = 1.0 if (name.endswith("weight") and ("norm" in name or ".ln_" in name)) else 0.0
            param.copy_(base + torch.randn(param.shape, generator=generator) * scale)
    return head


def random_clip_state_dict(size: str = "tiny", seed: int = 0) -> dict[str, torch.Tensor]:
    """A random CLIP state dict in OpenAI's naming."""
    return dict(random_clip(size, seed).openai_state_dict())


def write_checkpoint(
    path: str | os.PathLike,
    format: str = "actionclip",
    size: str = "tiny",
    frames: int = 8,
    fusion: str = "Transf",
    seed: int = 0,
    fp16: bool = False,
) -> Path:
    """Write a random checkpoint as the real files of ``format`` look, and return its path.

    ``fusion`` applies to "actionclip" (any of the five heads); "mmaction2" is always Transf with a
    ``frames``-row position table; "openai", "openai-jit" and "hf" are bare CLIP (meanP)."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {FORMATS}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clip = random_clip(size, seed)
    cfg = clip.config
    clip_sd = clip.openai_state_dict()
    if fp16:
        clip_sd = {k: v.half() for k, v in clip_sd.items()}
    heads = max(1, cfg.text_width // 64)
    if format == "actionclip":
        head = random_fusion(fusion, cfg.embed_dim, heads, frames, position_rows=ORIGINAL_POSITION_ROWS,
                             eps=1e-12, seed=seed)
        torch.save(
            {
                "epoch": 0,
                "model_state_dict": clip_sd,
                "fusion_model_state_dict": {f"module.{k}": v for k, v in head.state_dict().items()},
                "optimizer_state_dict": {"state": {}, "param_groups": []},
            },
            path,
        )
    elif format == "mmaction2":
        head = random_fusion("Transf", cfg.embed_dim, heads, frames, position_rows=frames, eps=1e-5, seed=seed)
        state = {f"clip.{k}": v for k, v in clip_sd.items()}
        state.update({f"adapter.{k}": v for k, v in head.state_dict().items()})
        torch.save({"meta": {"mmaction_version": "1.2.0", "epoch": 1}, "state_dict": state}, path)
    elif format == "openai":
        torch.save(clip_sd, path)
    elif format == "openai-jit":
        _write_torchscript(clip_sd, cfg, path)
    else:
        _write_hf_folder(cfg, path, seed)
    return path


def _write_torchscript(sd: dict[str, torch.Tensor], cfg: CLIPConfig, path: Path) -> None:
    """A TorchScript archive holding the weights under OpenAI's names, plus the three integer
    attributes OpenAI's archives carry in their state dicts."""

    class Holder(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    root = Holder()
    for key, value in sd.items():
        *parents, leaf = key.split(".")
        module = root
        for part in parents:
            if not hasattr(module, part):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        module.register_parameter(leaf, nn.Parameter(value.clone(), requires_grad=False))
    for key, value in (("input_resolution", cfg.image_resolution), ("context_length", cfg.context_length),
                       ("vocab_size", cfg.vocab_size)):
        root.register_buffer(key, torch.tensor(value))
    torch.jit.save(torch.jit.script(root), str(path))


def hf_config(cfg: CLIPConfig) -> dict:
    return {
        "projection_dim": cfg.embed_dim,
        "logit_scale_init_value": 4.6052,
        "text_config": {
            "hidden_size": cfg.text_width, "intermediate_size": 4 * cfg.text_width,
            "num_hidden_layers": cfg.text_layers, "num_attention_heads": cfg.text_heads,
            "max_position_embeddings": cfg.context_length, "vocab_size": cfg.vocab_size,
            "hidden_act": "quick_gelu", "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 1,
            "projection_dim": cfg.embed_dim,
        },
        "vision_config": {
            "hidden_size": cfg.vision_width, "intermediate_size": 4 * cfg.vision_width,
            "num_hidden_layers": cfg.vision_layers, "num_attention_heads": cfg.vision_heads,
            "image_size": cfg.image_resolution, "patch_size": cfg.vision_patch_size, "hidden_act": "quick_gelu",
            "projection_dim": cfg.embed_dim,
        },
    }


def _write_hf_folder(cfg: CLIPConfig, path: Path, seed: int) -> None:
    """Saved by ``transformers`` itself from its own random initialisation (a test dependency)."""
    from transformers import CLIPConfig as HFConfig
    from transformers import CLIPModel

    torch.manual_seed(seed)
    model = CLIPModel(HFConfig(**hf_config(cfg)))
    model.save_pretrained(str(path))


__all__ = ["SIZES", "FORMATS", "random_clip", "random_fusion", "random_clip_state_dict", "write_checkpoint",
           "hf_config", "asdict"]
