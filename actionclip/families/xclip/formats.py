"""Read X-CLIP checkpoints in both published layouts, as original-named state dicts.

* ``xclip``: the original release (``nbl97/X-CLIP_Model_Zoo``: ``k400_32_8.pth``, ``zero.pth`` ...):
  ``{"model": state_dict, ...}`` with OpenAI CLIP's names plus
  ``visual.transformer.resblocks.N.message_{fc,ln,attn}``, ``mit.*``, ``prompts_generator.*``,
  ``prompts_visual_ln``, ``prompts_visual_proj``. The training script also pickled its optimizer,
  scheduler and yacs config beside the weights; the refusing unpickler of
  :mod:`~actionclip.loading.checkpoints` reads the config as inert data. A ``module.`` prefix
  (DistributedDataParallel) is dropped. Heads are width / 64, as the original's ``build_model``.
* ``hf-xclip``: a Hugging Face hub folder (``config.json`` with ``model_type: "xclip"`` and
  ``model.safetensors`` or ``pytorch_model.bin``), renamed to the original's names; the config gives
  heads, activations and eps (older configs spell their sections ``text_config_dict`` /
  ``vision_config_dict``).

Both come out as a :class:`~actionclip.loading.checkpoints.LoadedCheckpoint` of family ``"xclip"``
whose ``num_frames`` is the length of the integration transformer's position table.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from actionclip.errors import CheckpointError
from actionclip.model.hf_clip import hf_layers_to_openai, hf_qkv_to_openai, hf_to_openai
from actionclip.model.loaded import LoadedCheckpoint

__all__ = ["read_mapping", "read_hf_folder", "hf_to_original", "is_original", "is_hf"]

_ORIGINAL_MARKER = "prompts_generator.alpha"
_HF_MARKER = "prompts_generator.layernorm.weight"

# Hugging Face name -> original name, for the keys outside the transformer layers.
_HF_RENAMES = {
    "vision_model.pre_layernorm.weight": "visual.ln_pre.weight",  # CLIP spells it pre_layrnorm
    "vision_model.pre_layernorm.bias": "visual.ln_pre.bias",
    "mit.position_embedding": "mit.positional_embedding",
    "prompts_visual_layernorm.weight": "prompts_visual_ln.weight",
    "prompts_visual_layernorm.bias": "prompts_visual_ln.bias",
    "prompts_visual_projection": "prompts_visual_proj",
    "prompts_generator.layernorm.weight": "prompts_generator.norm.weight",
    "prompts_generator.layernorm.bias": "prompts_generator.norm.bias",
}


def is_original(sd: Mapping[str, Any]) -> bool:
    return _ORIGINAL_MARKER in sd or f"module.{_ORIGINAL_MARKER}" in sd


def is_hf(sd: Mapping[str, Any]) -> bool:
    return _HF_MARKER in sd


def read_mapping(path: Path, obj: Mapping[str, Any]) -> LoadedCheckpoint | None:
    """The X-CLIP checkpoint in a loaded file (``{"model": sd}``, a bare original state dict, or a
    bare Hugging Face state dict), or None when it is not X-CLIP."""
    inner = obj.get("model")
    sd = inner if isinstance(inner, Mapping) and is_original(inner) else obj
    if is_original(sd):
        prefix = "module." if f"module.{_ORIGINAL_MARKER}" in sd else ""
        weights = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)}
        meta = {k: obj[k] for k in ("epoch", "max_accuracy") if isinstance(obj.get(k), (int, float))}
        return _loaded(path, "xclip", weights, {}, meta)
    if is_hf(obj):
        return _from_hf(path, obj, {})
    return None


def read_hf_folder(path: Path, config: Mapping[str, Any], sd: Mapping[str, torch.Tensor]) -> LoadedCheckpoint:
    """A Hugging Face X-CLIP folder's weights ``sd`` and ``config.json``."""
    if not is_hf(sd):
        raise CheckpointError(f"{path}: config.json says X-CLIP, but the weights lack {_HF_MARKER!r}")
    return _from_hf(path, sd, config)


def _from_hf(path: Path, sd: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> LoadedCheckpoint:
    try:
        weights, overrides = hf_to_original(sd, config)
    except KeyError as exc:
        raise CheckpointError(f"{path}: Hugging Face X-CLIP weights lack {exc.args[0]!r}") from None
    return _loaded(path, "hf-xclip", weights, overrides, {})


def _loaded(path: Path, fmt: str, weights: dict, overrides: dict, meta: dict) -> LoadedCheckpoint:
    table = weights.get("mit.positional_embedding")
    if table is None or table.ndim != 3:
        raise CheckpointError(f"{path}: X-CLIP weights lack a [1, T, D] 'mit.positional_embedding'")
    return LoadedCheckpoint(path, fmt, weights, num_frames=int(table.shape[1]), clip_overrides=overrides,
                            meta=meta, family="xclip")


def _sections(config: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    def section(name: str) -> Mapping[str, Any]:
        value = config.get(f"{name}_config") or config.get(f"{name}_config_dict") or {}
        return value if isinstance(value, Mapping) else {}

    return section("vision"), section("text")


def hf_to_original(sd: Mapping[str, torch.Tensor], config: Mapping[str, Any] | None) -> tuple[dict, dict]:
    """Rename a transformers ``XCLIPModel`` state dict to the original release's names. Returns the
    state dict and the architecture fields only the config states (heads, activations, eps), as
    overrides for :meth:`actionclip.families.xclip.model.XCLIPArch.from_state_dict`."""
    vision, text = _sections(config or {})
    out, clip_overrides = hf_to_openai(sd, {"vision_config": vision, "text_config": text} if config else None)
    for hf_key, ours in _HF_RENAMES.items():
        out[ours] = sd[hf_key]
    out.update(hf_layers_to_openai(sd, "mit.encoder.layers.", "mit.resblocks."))
    prefix = "vision_model.encoder.layers."
    for i in sorted({int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix)}):
        src, dst = f"{prefix}{i}.message_", f"visual.transformer.resblocks.{i}.message_"
        for name in ("fc.weight", "fc.bias", "ln.weight", "ln.bias", "attn.out_proj.weight", "attn.out_proj.bias"):
            out[dst + name] = sd[src + name]
        out.update(hf_qkv_to_openai(sd, f"{src}attn.", f"{dst}attn."))
    out.update({k: v for k, v in sd.items() if k.startswith("prompts_generator.") and k not in _HF_RENAMES})
    if not config:
        return out, {}
    if vision.get("layer_norm_eps", 1e-5) != text.get("layer_norm_eps", 1e-5):
        raise CheckpointError("X-CLIP towers with different LayerNorm eps are not supported")
    extra = {
        # transformers' defaults when a config leaves them out (XCLIPVisionConfig / XCLIPConfig)
        "mit_heads": vision.get("mit_num_attention_heads", 8),
        "prompt_heads": config.get("prompt_num_attention_heads", 8),
        "prompt_activation": config.get("prompt_hidden_act", "quick_gelu"),
    }
    return out, {**clip_overrides, **extra}
