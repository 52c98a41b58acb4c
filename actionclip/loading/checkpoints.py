"""Read every checkpoint format a user may bring, and write the original ActionCLIP format.

Formats, detected from the file's contents (not its name):

- ``actionclip``: the original repo's ``.pt``: ``{'model_state_dict': <CLIP, OpenAI names>,
  'fusion_model_state_dict': <head, 'module.' prefix>, 'epoch', 'optimizer_state_dict'}``; tensors may
  be fp16; the Transf position table has 77 rows.
- ``mmaction2``: the port's ``.pth``: ``{'state_dict': {'clip.*': CLIP, 'adapter.*': Transf head with a
  T-row position table}, 'meta': ...}``.
- ``openai``: OpenAI CLIP as a TorchScript archive (their release files) or a plain state dict: a
  ``meanP`` video model.
- ``hf``: a Hugging Face ``CLIPModel`` folder (``config.json`` + ``model.safetensors`` or
  ``pytorch_model.bin``): ``meanP``.
- ``xclip`` / ``hf-xclip``: X-CLIP's release files and Hugging Face folders, family ``xclip``
  (:mod:`actionclip.loading.xclip_formats`).
- ``vificlip``, ``openvclip`` (Open-VCLIP and FROSTER): read by :mod:`actionclip.loading.vclip_formats`.

Nothing here executes pickled code: files are read through :mod:`actionclip.loading.weights_io`.
Every reader returns a :class:`~actionclip.loading.loaded.LoadedCheckpoint`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from actionclip.errors import CheckpointError
from actionclip.loading.hf_clip import hf_to_openai
from actionclip.loading.loaded import LoadedCheckpoint, strip_prefix
from actionclip.loading.weights_io import is_torchscript, load_pickle, load_safetensors, sniff, torchscript_state_dict

ORIGINAL_POSITION_ROWS = 77


def read_checkpoint(path: str | os.PathLike) -> LoadedCheckpoint:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    if path.is_dir():
        return _read_hf_folder(path)
    kind = sniff(path)  # empty, text, unknown bytes: the one-line cause is raised here
    if kind == "safetensors" or path.suffix == ".safetensors":
        return _from_mapping(path, load_safetensors(path))
    if is_torchscript(path):
        return _read_torchscript(path)
    return _from_mapping(path, load_pickle(path))


# --- reading files --------------------------------------------------------------------------------


def _read_torchscript(path: Path) -> LoadedCheckpoint:
    sd = torchscript_state_dict(path)
    if "visual.conv1.weight" not in sd:
        raise CheckpointError(f"{path}: TorchScript archive is not an OpenAI CLIP ViT model")
    return LoadedCheckpoint(path, "openai", sd)


# --- recognising formats --------------------------------------------------------------------------


def _from_mapping(path: Path, obj: Any) -> LoadedCheckpoint:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: checkpoint holds a {type(obj).__name__}, expected a dict of weights")
    from actionclip.loading.vclip_formats import detect as detect_vclip

    found = detect_vclip(path, obj)
    if found is not None:
        return found
    from actionclip.loading import xclip_formats

    xclip = xclip_formats.read_mapping(path, obj)
    if xclip is not None:
        return xclip
    if "model_state_dict" in obj:
        return _read_original(path, obj)
    inner = obj.get("state_dict")
    if isinstance(inner, Mapping):
        if any(k.startswith("clip.") for k in inner):
            return _read_mmaction2(path, obj, inner)
        return _from_mapping(path, inner)
    if "visual.conv1.weight" in obj:
        return LoadedCheckpoint(path, "openai", dict(obj))
    if "vision_model.embeddings.patch_embedding.weight" in obj:
        sd, overrides = hf_to_openai(obj, config=None)
        return LoadedCheckpoint(path, "hf", sd, clip_overrides=overrides)
    keys = ", ".join(list(obj)[:5])
    raise CheckpointError(
        f"{path}: unrecognised checkpoint (keys: {keys}); expected an ActionCLIP .pt "
        "{'model_state_dict', 'fusion_model_state_dict'}, an mmaction2 .pth {'state_dict': {'clip.*', 'adapter.*'}}, "
        "an OpenAI CLIP .pt, a Hugging Face CLIP folder, a ViFi-CLIP .pth {'model': {'module.image_encoder.*'}} "
        "or an Open-VCLIP/FROSTER .pth {'model_state': {'model.*'}}"
    )


def _read_original(path: Path, obj: Mapping[str, Any]) -> LoadedCheckpoint:
    from actionclip.model.fusion import detect_fusion_type

    clip_sd = obj["model_state_dict"]
    if not isinstance(clip_sd, Mapping) or "visual.conv1.weight" not in clip_sd:
        raise CheckpointError(f"{path}: 'model_state_dict' is not a CLIP ViT state dict")
    fusion_raw = obj.get("fusion_model_state_dict") or {}
    fusion_sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in fusion_raw.items()}
    try:
        kind = obj.get("fusion") or detect_fusion_type(fusion_sd)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    frames = obj.get("num_frames")
    if frames is None and kind == "Transf_cls":
        frames = fusion_sd["transformer.pos_embed"].shape[1] - 1
    meta = {k: obj[k] for k in ("epoch", "actionclip_version") if k in obj}
    config = obj.get("config") if isinstance(obj.get("config"), Mapping) else {}
    return LoadedCheckpoint(
        path, "actionclip", dict(clip_sd), kind, fusion_sd,
        num_frames=int(frames) if frames is not None else None,
        fusion_eps=float(obj.get("fusion_layer_norm_eps", 1e-12)),
        meta=meta,
        family=str(obj.get("family", "actionclip")),
        config={k: v for k, v in config.items() if k != "frames"},
    )


def _read_mmaction2(path: Path, obj: Mapping[str, Any], sd: Mapping[str, Any]) -> LoadedCheckpoint:
    clip_sd = strip_prefix(sd, "clip.")
    adapter = strip_prefix(sd, "adapter.")
    if "frame_position_embeddings.weight" not in adapter:
        raise CheckpointError(f"{path}: mmaction2 checkpoint has no 'adapter.frame_position_embeddings.weight'")
    return LoadedCheckpoint(
        path, "mmaction2", clip_sd, "Transf", adapter,
        num_frames=adapter["frame_position_embeddings.weight"].shape[0],
        fusion_eps=1e-5,  # the port builds its adapter from CLIP's own Transformer (LayerNorm eps 1e-5)
    )


# --- Hugging Face ---------------------------------------------------------------------------------

def _read_hf_folder(path: Path) -> LoadedCheckpoint:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{path}: directory is not a Hugging Face CLIP model (no config.json)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{config_file}: unreadable config ({exc})") from None
    if config.get("model_type") not in (None, "clip", "xclip"):
        raise CheckpointError(f"{config_file}: model_type is {config.get('model_type')!r}, expected 'clip' or 'xclip'")
    sd: dict[str, torch.Tensor] = {}
    shards = sorted(path.glob("model*.safetensors"))
    if shards:
        for shard in shards:
            sd.update(load_safetensors(shard))
    elif (path / "pytorch_model.bin").is_file():
        loaded = load_pickle(path / "pytorch_model.bin")
        sd = dict(loaded) if isinstance(loaded, Mapping) else {}
    else:
        raise CheckpointError(f"{path}: no model.safetensors or pytorch_model.bin next to config.json")
    if config.get("model_type") == "xclip":
        from actionclip.loading.xclip_formats import read_hf_folder

        return read_hf_folder(path, config, sd)
    try:
        clip_sd, overrides = hf_to_openai(sd, config)
    except KeyError as exc:
        raise CheckpointError(f"{path}: Hugging Face CLIP weights lack {exc.args[0]!r}") from None
    return LoadedCheckpoint(path, "hf", clip_sd, clip_overrides=overrides)


# --- writing --------------------------------------------------------------------------------------


def save_actionclip_checkpoint(model: Any, path: str | os.PathLike, **extra: Any) -> Path:
    """Write ``model`` (an :class:`actionclip.ActionCLIP`) in the original ActionCLIP format, atomically.

    The original's code loads the result (its Transf table is padded to 77 rows); extra keys such as
    ``num_frames`` and ``fusion`` let actionclip restore the exact head without a registry entry.
    """
    path = Path(path)
    fusion_sd = {k: v.detach().cpu() for k, v in model.fusion.state_dict().items()}
    table = fusion_sd.get("frame_position_embeddings.weight")
    if table is not None and table.shape[0] < ORIGINAL_POSITION_ROWS:
        pad = torch.zeros(ORIGINAL_POSITION_ROWS - table.shape[0], table.shape[1], dtype=table.dtype)
        fusion_sd["frame_position_embeddings.weight"] = torch.cat([table, pad])
    payload = {
        "epoch": extra.pop("epoch", 0),
        "model_state_dict": {k: v.detach().cpu() for k, v in model.clip.openai_state_dict().items()},
        "fusion_model_state_dict": {f"module.{k}": v for k, v in fusion_sd.items()},
        "num_frames": int(model.num_frames),
        "fusion": model.fusion_type,
        "fusion_layer_norm_eps": float(getattr(model, "fusion_eps", 1e-12)),
        "config": model.config.to_dict(),
        "family": getattr(model, "family", "actionclip"),
        "actionclip_version": __import__("actionclip").__version__,
        **extra,
    }
    from actionclip.files import atomic_path

    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path
