"""The ViFi-CLIP, Open-VCLIP and FROSTER families: default configs and builders for
:data:`actionclip.loading.load.FAMILIES`, and the OpenAI CLIP weights two of them need at build time
(ViFi-CLIP's token embedding; Open-VCLIP's text tower and test-time weight interpolation). The files
themselves are read by :mod:`actionclip.loading.vclip_formats`; the facts behind the rules are in its
notes.

Open-VCLIP is built as its own test script (``tools/test_net.py``) builds it, which is not what a
reading of the paper suggests; both rules were checked against their code on random weights:

* its classifier comes from **OpenAI's text tower**: the model computes it when it is constructed,
  from the OpenAI weights it starts from, before the checkpoint is loaded, and never again at test
  time; a released file's own text weights are never used (:func:`with_openai_text`);
* the image tower (and the temperature) is **interpolated** in their arithmetic
  (:func:`interpolate`): OpenAI's weights stay in the fp16 of OpenAI's archive, and ``weight x
  ratio`` is an fp16 product. Under PyTorch 1.11, their environment, the CPU first rounds the ratio
  itself to fp16 (0.6 -> 0.599609375); newer PyTorch keeps it in fp32, so their code gives other
  numbers there (up to ~1e-4 in probabilities for L/14), and the 1.11 figures are the published ones.
  With B/16's and B/32's 0.5 both versions agree, and an fp32 product would differ only where half
  a weight is an fp16 subnormal (below 6.1e-5).

FROSTER's test scripts do neither: no interpolation, and the classifier is recomputed from the
loaded model's own text tower on every forward.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Mapping

import torch

from actionclip.errors import CheckpointError, DownloadError
from actionclip.loading.checkpoints import read_checkpoint
from actionclip.loading.loaded import LoadedCheckpoint

__all__ = ["openai_weights", "interpolate", "interpolation_ratio", "with_openai_text", "UNCAPPED", "FAMILIES"]

#: The originals never cap ``exp(logit_scale)``; a bound it never reaches keeps exported JSON finite.
UNCAPPED = 1e4

# (image width, patch size) -> the registry entry holding OpenAI's weights of that architecture, and
# the share of them Open-VCLIP's test scripts mix in (TEST.PATCHING_RATIO in script/testing/*).
_OPENAI_BY_SHAPE = {(768, 32): ("clip-vit-b-32", 0.5), (768, 16): ("clip-vit-b-16", 0.5),
                    (1024, 14): ("clip-vit-l-14", 0.6)}
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
                what: str = "checkpoint", keys: Callable[[str], bool] = lambda key: True) -> dict[str, torch.Tensor]:
    """``original * ratio + finetuned * (1 - ratio)`` for every weight of ``original`` that ``keys``
    accepts (Open-VCLIP's test-time weight interpolation), in their arithmetic: ``original`` in fp16
    (OpenAI's archives are fp16, so the cast is exact for them) times ``ratio`` as an fp16 product,
    ``finetuned`` times ``1 - ratio`` in its own dtype, the sum in the wider of the two, stored as
    fp32. Weights only ``finetuned`` has are kept as they are."""
    from actionclip.model.clip import NON_WEIGHT_KEYS

    out = dict(finetuned)
    for key, value in original.items():
        if key in NON_WEIGHT_KEYS or not keys(key):
            continue
        mine = finetuned.get(key)
        if mine is None or mine.shape != value.shape:
            got = "missing" if mine is None else f"shape {tuple(mine.shape)}"
            raise CheckpointError(f"{what}: cannot interpolate with OpenAI CLIP: {key!r} is {got}, "
                                  f"CLIP's is {tuple(value.shape)}")
        out[key] = (_times(value.to(torch.float16), ratio) + _times(mine, 1.0 - ratio)).float()
    return out


def _times(tensor: torch.Tensor, scalar: float) -> torch.Tensor:
    """``tensor * scalar`` as PyTorch 1.11 computes it on the CPU: the scalar cast to the tensor's
    dtype first (for fp16 that rounds it: 0.6 -> 0.599609375), the product rounded to that dtype."""
    if tensor.dtype in (torch.float16, torch.bfloat16):
        rounded = torch.tensor(scalar, dtype=tensor.dtype).item()
        return (tensor.float() * rounded).to(tensor.dtype)
    return tensor * scalar


def _is_text(key: str) -> bool:
    return not key.startswith("visual.") and key != "logit_scale"


def with_openai_text(clip_sd: Mapping[str, torch.Tensor], original: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``clip_sd`` with OpenAI's text tower (token and position embeddings, blocks, final norm,
    projection) in fp32, as Open-VCLIP's test builds its classifier; the image tower and the
    temperature stay ``clip_sd``'s."""
    from actionclip.model.clip import NON_WEIGHT_KEYS

    return {**clip_sd, **{k: v.float() for k, v in original.items() if _is_text(k) and k not in NON_WEIGHT_KEYS}}


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

        if interpolates and ckpt.format == "openvclip":  # their file: built as their test script builds it
            ratio = interpolation_ratio(ckpt)
            why = (f"{ckpt.path}: Open-VCLIP is tested with OpenAI CLIP's text tower and its image tower "
                   f"interpolated with OpenAI CLIP's ({ratio:g} x CLIP + {1 - ratio:g} x the file)")
            original = openai_weights(ckpt.clip_state_dict, why)
            sd = with_openai_text(ckpt.clip_state_dict, original)
            if ratio:
                sd = interpolate(sd, original, ratio, str(ckpt.path), keys=lambda key: not _is_text(key))
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
