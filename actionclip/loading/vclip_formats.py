"""ViFi-CLIP, Open-VCLIP and FROSTER: recognising and reading their checkpoint files (the families
that build models from them are :mod:`actionclip.loading.vclip_families`).

Facts from the original repositories (muzairkhattak/ViFi-CLIP, wengzejia1/Open-VCLIP,
Visual-AI/FROSTER), read for this module; the code is ours.

**ViFi-CLIP** saves ``{"model": state_dict, "optimizer", "lr_scheduler", "max_accuracy", "epoch",
"config": <yacs CfgNode>}`` from a DistributedDataParallel model, keys ``module.image_encoder.*``
(CLIP's image tower), ``module.text_encoder.{transformer, positional_embedding, ln_final,
text_projection}``, ``module.logit_scale`` and ``module.prompt_learner.complete_text_embeddings``
(the training classes' token embeddings, which their own loader drops too). CLIP's token embedding
is not in the file: it stays frozen at OpenAI ViT-B/16's values, so the family fetches it from the
registry's ``clip-vit-b-16`` (:func:`~actionclip.loading.vclip_families.openai_weights`). The fully fine-tuned models use the plain
prompt ``"a photo of a {}."`` (their ``CTX_INIT`` + label + ``.``), ImageNet's mean/std, short side
256 then a 224 centre crop (mmcv's bilinear resize), 32 frames for the zero-shot model. The model is
ActionCLIP with mean pooling: ``family="vificlip"`` is a config and a builder, the class is
:class:`~actionclip.model.actionclip.ActionCLIP` (so training and ONNX export work unchanged). Their
"bridge and prompt" checkpoints (learned ``prompt_learner.ctx`` and visual ``VPT`` prompts) are not
supported.

**Open-VCLIP** and **FROSTER** are PySlowFast code: ``{"model_state": state_dict}`` (their weight
averaging tool writes only that, fp32; training checkpoints add ``epoch``, ``optimizer_state``,
``cfg``, a YAML string, and ``scaler_state`` under mixed precision), keys ``model.<OpenAI CLIP name>``. FROSTER's files also hold its
distillation projectors ``projector_v.*``/``projector_t.*`` (used in training only), which is how
a file is told to be FROSTER's; training checkpoints may hold the frozen teacher ``raw_model.*``.
Their test scripts run 8 frames, CLIP's mean/std, short side 224 and a centre crop. Open-VCLIP's
test scripts then **interpolate** every weight with OpenAI CLIP's before testing
(``TEST.PATCHING_RATIO``: ``r * CLIP + (1 - r) * file``, r = 0.5 for B/32 and B/16, 0.6 for L/14),
and its released files are the un-interpolated SWA averages, so the family does the same
(:func:`~actionclip.loading.vclip_families.interpolation_ratio`; set ``ckpt.meta["interpolation"]`` before
:func:`~actionclip.loading.load.build_model` to choose another ratio), in their fp16 arithmetic; and
its classifier is computed from OpenAI's text tower when the model is built, before the file is
loaded, so a file's text weights are never used (:mod:`~actionclip.loading.vclip_families` has both rules).
FROSTER's scripts do not interpolate (``TEST.PATCHING_MODEL False``), and FROSTER recomputes its
classifier from the loaded weights on every forward: its files' text towers are used. A model saved by actionclip
(:func:`~actionclip.loading.checkpoints.save_actionclip_checkpoint`) holds the weights it ran with
and its family, and is never interpolated again.

All three apply no cap to CLIP's learned temperature (``vclip_families.UNCAPPED``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch

from actionclip.errors import CheckpointError
from actionclip.loading.loaded import LoadedCheckpoint

__all__ = ["detect"]

# What a standard CLIP block holds; anything else in an image block is a temporal module we lack.
_BLOCK_KEYS = {f"{m}.{p}" for m in ("ln_1", "ln_2", "mlp.c_fc", "mlp.c_proj", "attn.out_proj") for p in ("weight", "bias")}
_BLOCK_KEYS |= {"attn.in_proj_weight", "attn.in_proj_bias"}
_FROSTER_HEADS = ("projector_v.", "projector_t.")
_TRAINING_ONLY = (*_FROSTER_HEADS, "raw_model.")


# --- reading --------------------------------------------------------------------------------------


def detect(path: Path, obj: Mapping[str, Any]) -> LoadedCheckpoint | None:
    """The checkpoint ``obj`` (a loaded file's top-level dict) holds, if it is one of these formats."""
    model = obj.get("model")
    if isinstance(model, Mapping) and any(_unprefixed(k).startswith("image_encoder.") for k in model):
        return _read_vificlip(path, obj, model)
    state = obj.get("model_state")
    if isinstance(state, Mapping) and any(k.startswith("model.visual.") for k in state):
        return _read_slowfast(path, obj, state)
    return None


def _unprefixed(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key


def _read_vificlip(path: Path, obj: Mapping[str, Any], raw: Mapping[str, Any]) -> LoadedCheckpoint:
    sd = {_unprefixed(k): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    prompts = next((k for k in sd if k.startswith("prompt_learner.ctx") or "VPT" in k), None)
    if prompts is not None:
        raise CheckpointError(f"{path}: a ViFi-CLIP prompt-learning checkpoint ({prompts!r}); only the fully "
                              "fine-tuned ViFi-CLIP models (no learned prompts) are supported")
    clip_sd: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key.startswith("image_encoder."):
            clip_sd["visual." + key[len("image_encoder."):]] = value
        elif key.startswith("text_encoder."):
            clip_sd[key[len("text_encoder."):]] = value
        elif key == "logit_scale":
            clip_sd[key] = value
    meta = {k: obj[k] for k in ("epoch", "max_accuracy") if isinstance(obj.get(k), (int, float))}
    return LoadedCheckpoint(path, "vificlip", clip_sd, "meanP", meta=meta, family="vificlip")


def _cfg_value(cfg: Any, key: str) -> str | None:
    """A value of a PySlowFast config dump (YAML text), e.g. ``TEMPORAL_MODELING_TYPE``."""
    if not isinstance(cfg, str):
        return None
    found = re.search(rf"^\s*{key}:\s*(\S+)\s*$", cfg, re.MULTILINE)
    return found.group(1).strip("'\"") if found else None


def _read_slowfast(path: Path, obj: Mapping[str, Any], state: Mapping[str, Any]) -> LoadedCheckpoint:
    temporal = _cfg_value(obj.get("cfg"), "TEMPORAL_MODELING_TYPE")
    if temporal not in (None, "expand_temporal_view"):
        raise CheckpointError(f"{path}: temporal modelling {temporal!r}; only Open-VCLIP's neighbour attention "
                              "('expand_temporal_view') is supported")
    other = next((k for k in state if not k.startswith(("model.", *_TRAINING_ONLY))), None)
    if other is not None:
        raise CheckpointError(f"{path}: an Open-VCLIP/FROSTER variant with {other!r} (learned prompts or a tuned "
                              "classifier head) is not supported")
    clip_sd = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.") and isinstance(v, torch.Tensor)}
    prefix = "visual.transformer.resblocks."
    extra = next((k for k in clip_sd if k.startswith(prefix) and k[len(prefix):].split(".", 1)[-1] not in _BLOCK_KEYS), None)
    if extra is not None:
        raise CheckpointError(f"{path}: image blocks with extra modules ({extra!r}); only Open-VCLIP's neighbour "
                              "attention, which adds no parameters, is supported")
    distilled = _cfg_value(obj.get("cfg"), "RAW_MODEL_DISTILLATION")
    froster = any(k.startswith(_FROSTER_HEADS) for k in state) or str(distilled).lower() == "true"
    meta = {k: obj[k] for k in ("epoch",) if isinstance(obj.get(k), int)}
    family = "froster" if froster else "openvclip"
    return LoadedCheckpoint(path, "openvclip", clip_sd, "meanP", meta=meta, family=family)
