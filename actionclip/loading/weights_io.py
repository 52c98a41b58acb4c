"""Reading weight files without running code: safetensors, torch pickles, TorchScript archives.

Pickles are read with ``torch.load(weights_only=True)``; only when that refuses metadata written by
numpy/mmengine/yacs (mmaction2's and the research repos' checkpoints carry some) is the file re-read
with an unpickler that turns those objects into inert placeholders and refuses every other global.
TorchScript archives are read with ``torch.jit.load``, whose C++ unpickler builds no Python objects;
the scripted code is never run, only its parameters are read. Every failure is one
:class:`~actionclip.errors.CheckpointError` line naming the file.
"""

from __future__ import annotations

import io
import pickle
import types
import zipfile
from pathlib import Path
from typing import Any

import torch

from actionclip.errors import CheckpointError

__all__ = ["load_safetensors", "is_torchscript", "torchscript_state_dict", "load_pickle", "first_line"]


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def is_torchscript(path: Path) -> bool:
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


def torchscript_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The parameters of a TorchScript archive (its code is never run)."""
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # the C++ loader raises many types; all mean "unreadable"
        raise CheckpointError(f"{path}: unreadable TorchScript archive ({first_line(exc)})") from None
    return {k: v for k, v in module.state_dict().items()}


# yacs: X-CLIP's release files pickle the training config (a yacs CfgNode, a dict) beside the weights.
_BENIGN_ROOTS = ("numpy", "mmengine", "mmcv", "mmaction", "datetime", "_codecs", "yacs")


class _Inert(dict):
    """Placeholder for a metadata object we refuse to construct (a dict, so that a pickled dict
    subclass such as yacs' CfgNode can receive its items)."""

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


def load_pickle(path: Path) -> Any:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first_error = first_line(exc)
    except Exception as exc:  # zip/stream errors: truncated or not a torch file
        raise CheckpointError(f"{path}: cannot read checkpoint, file truncated or not a PyTorch file ({first_line(exc)})") from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False, pickle_module=_tolerant_pickle)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: refused to unpickle, the file references code ({first_line(exc)}); nothing was executed") from None
    except Exception:
        raise CheckpointError(f"{path}: cannot read checkpoint ({first_error})") from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
