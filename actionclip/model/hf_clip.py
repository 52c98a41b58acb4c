"""Hugging Face ``CLIPModel`` names to OpenAI's: q/k/v fused, projections transposed.

Used for HF CLIP folders and by every family whose Hugging Face port keeps CLIP's towers (X-CLIP).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from actionclip.errors import CheckpointError

__all__ = ["hf_to_openai", "hf_layers_to_openai", "hf_qkv_to_openai"]


_HF_BLOCK = {
    "self_attn.out_proj.weight": "attn.out_proj.weight",
    "self_attn.out_proj.bias": "attn.out_proj.bias",
    "layer_norm1.weight": "ln_1.weight",
    "layer_norm1.bias": "ln_1.bias",
    "layer_norm2.weight": "ln_2.weight",
    "layer_norm2.bias": "ln_2.bias",
    "mlp.fc1.weight": "mlp.c_fc.weight",
    "mlp.fc1.bias": "mlp.c_fc.bias",
    "mlp.fc2.weight": "mlp.c_proj.weight",
    "mlp.fc2.bias": "mlp.c_proj.bias",
}
_HF_TOP = {
    "vision_model.embeddings.class_embedding": "visual.class_embedding",
    "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
    "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
    "vision_model.pre_layrnorm.weight": "visual.ln_pre.weight",
    "vision_model.pre_layrnorm.bias": "visual.ln_pre.bias",
    "vision_model.post_layernorm.weight": "visual.ln_post.weight",
    "vision_model.post_layernorm.bias": "visual.ln_post.bias",
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight",
    "text_model.final_layer_norm.bias": "ln_final.bias",
    "logit_scale": "logit_scale",
}


def hf_layers_to_openai(sd: Mapping[str, torch.Tensor], prefix: str, ours_prefix: str) -> dict[str, torch.Tensor]:
    """The numbered transformer layers ``<prefix><i>.*`` of a transformers CLIP-style encoder, renamed
    to OpenAI's ``<ours_prefix><i>.*`` (q/k/v fused into ``attn.in_proj_*``)."""
    out: dict[str, torch.Tensor] = {}
    layers = sorted({int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix)})
    for i in layers:
        src, dst = f"{prefix}{i}.", f"{ours_prefix}{i}."
        for hf_name, name in _HF_BLOCK.items():
            out[dst + name] = sd[src + hf_name]
        out.update(hf_qkv_to_openai(sd, f"{src}self_attn.", f"{dst}attn."))
    return out


def hf_qkv_to_openai(sd: Mapping[str, torch.Tensor], src: str, dst: str) -> dict[str, torch.Tensor]:
    """transformers' ``<src>{q,k,v}_proj.{weight,bias}`` -> ``nn.MultiheadAttention``'s ``<dst>in_proj_*``."""
    return {f"{dst}in_proj_{kind}": torch.cat([sd[f"{src}{p}_proj.{kind}"] for p in "qkv"])
            for kind in ("weight", "bias")}


def hf_to_openai(sd: Mapping[str, torch.Tensor], config: Mapping[str, Any] | None) -> tuple[dict, dict]:
    """Rename a transformers ``CLIPModel`` state dict to OpenAI's names (q/k/v fused, projections
    transposed). Returns the state dict and the config fields it cannot show (heads, activation, eps)."""
    out: dict[str, torch.Tensor] = {}
    for hf_key, ours in _HF_TOP.items():
        if hf_key in sd:
            out[ours] = sd[hf_key]
    out["visual.proj"] = sd["visual_projection.weight"].t().contiguous()
    out["text_projection"] = sd["text_projection.weight"].t().contiguous()
    for tower, ours_prefix in (("vision_model", "visual.transformer"), ("text_model", "transformer")):
        out.update(hf_layers_to_openai(sd, f"{tower}.encoder.layers.", f"{ours_prefix}.resblocks."))
    if "logit_scale" not in out:
        out["logit_scale"] = torch.tensor(4.6052)
    overrides: dict[str, Any] = {}
    if config:
        vision, text = config.get("vision_config", {}), config.get("text_config", {})
        act = text.get("hidden_act", "quick_gelu")
        if vision.get("hidden_act", act) != act:
            raise CheckpointError("CLIP towers with different activations are not supported")
        overrides = {
            "vision_heads": vision.get("num_attention_heads"),
            "text_heads": text.get("num_attention_heads"),
            "activation": act,
            "layer_norm_eps": text.get("layer_norm_eps", 1e-5),
        }
        overrides = {k: v for k, v in overrides.items() if v is not None}
    return out, overrides
