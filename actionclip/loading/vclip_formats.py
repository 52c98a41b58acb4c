"""ViFi-CLIP, Open-VCLIP and FROSTER: their checkpoint files, and the families that build them.

Facts from the original repositories (muzairkhattak/ViFi-CLIP, wengzejia1/Open-VCLIP,
Visual-AI/FROSTER), read for this module; the code is ours.

**ViFi-CLIP** saves ``{"model": state_dict, "optimizer", "lr_scheduler", "max_accuracy", "epoch",
"config": <yacs CfgNode>}`` from a DistributedDataParallel model, keys ``module.image_encoder.*``
(CLIP's image tower), ``module.text_encoder.{transformer, positional_embedding, ln_final,
text_projection}``, ``module.logit_scale`` and ``module.prompt_learner.complete_text_embeddings``
(the training classes' token embeddings, which their own loader drops too). CLIP's token embedding
is not in the file: it stays frozen at OpenAI ViT-B/16's values, so the family fetches it from the
registry's ``clip-vit-b-16`` (:func:`openai_weights`). The fully fine-tuned models use the plain
prompt ``"a photo of a {}."`` (their ``CTX_INIT`` + label + ``.``), ImageNet's mean/std, short side
256 then a 224 centre crop (mmcv's bilinear resize), 32 frames for the zero-shot model. The model is
ActionCLIP with mean pooling: ``family="vificlip"`` is a config and a builder, the class is
:class:`~actionclip.model.actionclip.ActionCLIP` (so training and ONNX export work unchanged). Their
"bridge and prompt" checkpoints (learned ``prompt_learner.ctx`` and visual ``VPT`` prompts) are not
supported.

**Open-VCLIP** and **FROSTER** are PySlowFast code: ``{"model_state": state_dict}`` (their weight
averaging tool writes only that; training checkpoints add ``epoch``, ``optimizer_state`` and
``cfg``, a YAML string), keys ``model.<OpenAI CLIP name>``. FROSTER's files also hold its
distillation projectors ``projector_v.*``/``projector_t.*`` (used in training only), which is how
a file is told to be FROSTER's; training checkpoints may hold the frozen teacher ``raw_model.*``.
Their test scripts run 8 frames, CLIP's mean/std, short side 224 and a centre crop. Open-VCLIP's
test scripts then **interpolate** every weight with OpenAI CLIP's before testing
(``TEST.PATCHING_RATIO``: ``r * CLIP + (1 - r) * file``, r = 0.5 for B/32 and B/16, 0.6 for L/14),
and its released files are the un-interpolated SWA averages, so the family does the same
(:func:`interpolation_ratio`; set ``ckpt.meta["interpolation"]`` before
:func:`~actionclip.loading.load.build_model` to choose another ratio).
FROSTER's scripts do not interpolate (``TEST.PATCHING_MODEL False``). A model saved by actionclip
(:func:`~actionclip.loading.checkpoints.save_actionclip_checkpoint`) holds the weights it ran with
and its family, and is never interpolated again.

All three apply no cap to CLIP's learned temperature; :data:`UNCAPPED` stands for that.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from actionclip.errors import CheckpointError, DownloadError
from actionclip.loading.checkpoints import LoadedCheckpoint, read_checkpoint

__all__ = ["detect", "openai_weights", "interpolate", "interpolation_ratio", "UNCAPPED", "FAMILIES"]

#: The originals never cap ``exp(logit_scale)``; a bound it never reaches keeps exported JSON finite.
UNCAPPED = 1e4

# (image width, patch size) -> the registry entry holding OpenAI's weights of that architecture, and
# the share of them Open-VCLIP's test scripts mix in (TEST.PATCHING_RATIO in script/testing/*).
_OPENAI_BY_SHAPE = {(768, 32): ("clip-vit-b-32", 0.5), (768, 16): ("clip-vit-b-16", 0.5),
                    (1024, 14): ("clip-vit-l-14", 0.6)}
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


# --- OpenAI's weights, and interpolating with them -------------------------------------------------


def openai_weights(clip_sd: Mapping[str, torch.Tensor], why: str) -> dict[str, torch.Tensor]:
    """OpenAI CLIP's state dict for the architecture of ``clip_sd``, from the registry (downloaded
    and cached on first use). ``why`` opens any error message: what needs the weights."""
    from actionclip.loading.download import download

    shape = _image_shape(clip_sd)
    if shape not in _OPENAI_BY_SHAPE:
        raise CheckpointError(f"{why}; no OpenAI CLIP of image width/patch {shape} is in the registry")
    name = _OPENAI_BY_SHAPE[shape][0]
    try:
        return read_checkpoint(download(name)).clip_state_dict
    except DownloadError as exc:
        raise DownloadError(f"{why}; OpenAI's weights are the registry's {name!r}, which could not be fetched: "
                            f"{exc}") from None


def _image_shape(clip_sd: Mapping[str, torch.Tensor]) -> tuple[int, int] | None:
    conv = clip_sd.get("visual.conv1.weight")
    return (int(conv.shape[0]), int(conv.shape[-1])) if conv is not None else None


def interpolation_ratio(ckpt: LoadedCheckpoint) -> float:
    """The share of OpenAI CLIP Open-VCLIP's test script mixes into this checkpoint's weights:
    ``ckpt.meta["interpolation"]`` if set, else their scripts' value for the architecture (0.5 where
    they have none)."""
    if "interpolation" in ckpt.meta:
        return float(ckpt.meta["interpolation"])
    return _OPENAI_BY_SHAPE.get(_image_shape(ckpt.clip_state_dict), ("", 0.5))[1]


def interpolate(finetuned: Mapping[str, torch.Tensor], original: Mapping[str, torch.Tensor], ratio: float,
                what: str = "checkpoint") -> dict[str, torch.Tensor]:
    """``ratio * original + (1 - ratio) * finetuned`` for every weight of ``original`` (Open-VCLIP's
    test-time weight interpolation); weights only ``finetuned`` has are kept as they are."""
    from actionclip.model.clip import NON_WEIGHT_KEYS

    out = dict(finetuned)
    for key, value in original.items():
        if key in NON_WEIGHT_KEYS:
            continue
        mine = finetuned.get(key)
        if mine is None or mine.shape != value.shape:
            got = "missing" if mine is None else f"shape {tuple(mine.shape)}"
            raise CheckpointError(f"{what}: cannot interpolate with OpenAI CLIP: {key!r} is {got}, "
                                  f"CLIP's is {tuple(value.shape)}")
        out[key] = value.float() * ratio + mine.float() * (1.0 - ratio)
    return out


# --- families (actionclip.loading.load.FAMILIES) --------------------------------------------------


def _build_vificlip(ckpt: LoadedCheckpoint, config: Any) -> Any:
    from actionclip.model.actionclip import ActionCLIP

    sd = ckpt.clip_state_dict
    if "token_embedding.weight" not in sd:
        why = f"{ckpt.path}: ViFi-CLIP files leave out CLIP's token embedding (it stays at OpenAI CLIP's values)"
        sd = {**sd, "token_embedding.weight": openai_weights(sd, why)["token_embedding.weight"]}
    return ActionCLIP.from_checkpoint(replace(ckpt, clip_state_dict=sd), config)


def _builder(cls_name: str, interpolates: bool) -> Callable[[LoadedCheckpoint, Any], Any]:
    def build(ckpt: LoadedCheckpoint, config: Any) -> Any:
        from actionclip.model import openvclip

        ratio = interpolation_ratio(ckpt) if interpolates else 0.0
        if ratio and ckpt.format == "openvclip":  # a released file: interpolate as their test script does
            why = (f"{ckpt.path}: Open-VCLIP is tested with its weights interpolated with OpenAI CLIP's "
                   f"({ratio:g} x CLIP + {1 - ratio:g} x the file)")
            sd = interpolate(ckpt.clip_state_dict, openai_weights(ckpt.clip_state_dict, why), ratio, str(ckpt.path))
            ckpt = replace(ckpt, clip_state_dict=sd)
        return getattr(openvclip, cls_name).from_checkpoint(ckpt, config)

    return build


def _family_config(family: str) -> Any:
    from actionclip.model.config import ModelConfig
    from actionclip.model.openvclip import FROSTER_TEMPLATES, OPENVCLIP_TEMPLATES
    from actionclip.video.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

    if family == "vificlip":
        return ModelConfig(frames=32, templates=("a photo of a {}.",), max_logit_scale=UNCAPPED,
                           preprocessing=Preprocessing(mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear"))
    templates = OPENVCLIP_TEMPLATES if family == "openvclip" else FROSTER_TEMPLATES
    return ModelConfig(frames=8, templates=templates, max_logit_scale=UNCAPPED,
                       preprocessing=Preprocessing(resize_ratio=1.0, interpolation="bilinear"))


#: family name -> () -> (default ModelConfig, builder(checkpoint, config)), for load.FAMILIES
FAMILIES: dict[str, Callable[[], tuple[Any, Callable[..., Any]]]] = {
    "vificlip": lambda: (_family_config("vificlip"), _build_vificlip),
    "openvclip": lambda: (_family_config("openvclip"), _builder("OpenVCLIP", interpolates=True)),
    "froster": lambda: (_family_config("froster"), _builder("FROSTER", interpolates=False)),
}
