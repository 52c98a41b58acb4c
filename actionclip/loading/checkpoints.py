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
- ``vificlip``, ``openvclip`` (Open-VCLIP and FROSTER): read by :mod:`actionclip.loading.vclip_formats`.

Nothing here executes pickled code. Pickles are read with ``torch.load(weights_only=True)``; only when
that refuses metadata written by numpy/mmengine (mmaction2 checkpoints carry some) is the file re-read
with an unpickler that turns those objects into inert placeholders and refuses every other global.
TorchScript archives are read with ``torch.jit.load``, whose C++ unpickler builds no Python objects;
the scripted code is never run, only its parameters are read.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import types
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from actionclip.errors import CheckpointError

ORIGINAL_POSITION_ROWS = 77


@dataclass
class LoadedCheckpoint:
    """A checkpoint normalised to OpenAI CLIP names + a prefix-free fusion state dict."""

    path: Path
    format: str
    clip_state_dict: dict[str, torch.Tensor]
    fusion_type: str = "meanP"
    fusion_state_dict: dict[str, torch.Tensor] = field(default_factory=dict)
    num_frames: int | None = None  # when the file says; otherwise the registry or the caller decides
    fusion_eps: float = 1e-12  # the original's LayerNorm eps in the Transf head
    clip_overrides: dict[str, Any] = field(default_factory=dict)  # config fields a state dict can't show
    meta: dict[str, Any] = field(default_factory=dict)
    family: str = "actionclip"  # which model family builds it (actionclip.loading.load.FAMILIES)
    config: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides the file carries


def read_checkpoint(path: str | os.PathLike) -> LoadedCheckpoint:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    if path.is_dir():
        return _read_hf_folder(path)
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: file is empty")
    if path.suffix == ".safetensors":
        return _from_mapping(path, _load_safetensors(path))
    if _is_torchscript(path):
        return _read_torchscript(path)
    return _from_mapping(path, _load_pickle(path))


# --- reading files --------------------------------------------------------------------------------


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.split("/", 1)[-1].startswith("code/") for n in names) and any(
        n.endswith("constants.pkl") for n in names
    )


def _read_torchscript(path: Path) -> LoadedCheckpoint:
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # the C++ loader raises many types; all mean "unreadable"
        raise CheckpointError(f"{path}: unreadable TorchScript archive ({_first_line(exc)})") from None
    sd = {k: v for k, v in module.state_dict().items()}
    if "visual.conv1.weight" not in sd:
        raise CheckpointError(f"{path}: TorchScript archive is not an OpenAI CLIP ViT model")
    return LoadedCheckpoint(path, "openai", sd)


_BENIGN_ROOTS = ("numpy", "mmengine", "mmcv", "mmaction", "datetime", "_codecs", "yacs")


class _Inert:
    """Placeholder for a metadata object we refuse to construct."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        # dict subclasses (ViFi-CLIP's yacs CfgNode) are unpickled item by item
        self.__dict__.setdefault("items", {})[key] = value


class _MetadataTolerantUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict") or (
            module in ("builtins", "__builtin__") and name in ("set", "frozenset")  # protocol 2 says __builtin__
        ):
            return super().find_class(module, name)
        if module in ("torch", "torch._utils", "torch.storage") and (
            name.startswith("_rebuild") or name.endswith("Storage") or isinstance(getattr(torch, name, None), torch.dtype)
            or name in ("Size", "device")
        ):
            return super().find_class(module, name)
        if module.split(".")[0] in _BENIGN_ROOTS:
            return type(f"{module}.{name}", (_Inert,), {})
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _tolerant_load(file: Any, **kwargs: Any) -> Any:
    return _MetadataTolerantUnpickler(file, **kwargs).load()


def _tolerant_loads(data: bytes, **kwargs: Any) -> Any:
    return _MetadataTolerantUnpickler(io.BytesIO(data), **kwargs).load()


# Passed to torch.load as its pickle module: every path torch takes (zip or legacy format) goes through
# the same refusing unpickler, never through plain pickle.
_tolerant_pickle = types.SimpleNamespace(
    Unpickler=_MetadataTolerantUnpickler, load=_tolerant_load, loads=_tolerant_loads, __name__="actionclip_pickle"
)


def _load_pickle(path: Path) -> Any:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first_error = _first_line(exc)
    except Exception as exc:  # zip/stream errors: truncated or not a torch file
        raise CheckpointError(f"{path}: cannot read checkpoint, file truncated or not a PyTorch file ({_first_line(exc)})") from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False, pickle_module=_tolerant_pickle)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: refused to unpickle, the file references code ({_first_line(exc)}); nothing was executed") from None
    except Exception:
        raise CheckpointError(f"{path}: cannot read checkpoint ({first_error})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


# --- recognising formats --------------------------------------------------------------------------


def _strip(sd: Mapping[str, Any], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)}


def _from_mapping(path: Path, obj: Any) -> LoadedCheckpoint:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: checkpoint holds a {type(obj).__name__}, expected a dict of weights")
    from actionclip.loading.vclip_formats import detect as detect_vclip

    found = detect_vclip(path, obj)
    if found is not None:
        return found
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
    clip_sd = _strip(sd, "clip.")
    adapter = _strip(sd, "adapter.")
    if "frame_position_embeddings.weight" not in adapter:
        raise CheckpointError(f"{path}: mmaction2 checkpoint has no 'adapter.frame_position_embeddings.weight'")
    return LoadedCheckpoint(
        path, "mmaction2", clip_sd, "Transf", adapter,
        num_frames=adapter["frame_position_embeddings.weight"].shape[0],
        fusion_eps=1e-5,  # the port builds its adapter from CLIP's own Transformer (LayerNorm eps 1e-5)
    )


# --- Hugging Face ---------------------------------------------------------------------------------

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
        prefix = f"{tower}.encoder.layers."
        layers = sorted({int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix)})
        for i in layers:
            src, dst = f"{prefix}{i}.", f"{ours_prefix}.resblocks.{i}."
            for hf_name, name in _HF_BLOCK.items():
                out[dst + name] = sd[src + hf_name]
            out[dst + "attn.in_proj_weight"] = torch.cat([sd[f"{src}self_attn.{p}_proj.weight"] for p in "qkv"])
            out[dst + "attn.in_proj_bias"] = torch.cat([sd[f"{src}self_attn.{p}_proj.bias"] for p in "qkv"])
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


def _read_hf_folder(path: Path) -> LoadedCheckpoint:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{path}: directory is not a Hugging Face CLIP model (no config.json)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{config_file}: unreadable config ({exc})") from None
    if config.get("model_type") not in (None, "clip"):
        raise CheckpointError(f"{config_file}: model_type is {config.get('model_type')!r}, expected 'clip'")
    sd: dict[str, torch.Tensor] = {}
    shards = sorted(path.glob("model*.safetensors"))
    if shards:
        for shard in shards:
            sd.update(_load_safetensors(shard))
    elif (path / "pytorch_model.bin").is_file():
        loaded = _load_pickle(path / "pytorch_model.bin")
        sd = dict(loaded) if isinstance(loaded, Mapping) else {}
    else:
        raise CheckpointError(f"{path}: no model.safetensors or pytorch_model.bin next to config.json")
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
