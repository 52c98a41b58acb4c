"""Reading weight files without running code: safetensors, torch pickles, TorchScript archives.

Pickles are read with ``torch.load(weights_only=True)``; only when that refuses metadata written by
numpy/mmengine/yacs (mmaction2's and the research repos' checkpoints carry some) is the file re-read
with an unpickler that turns those objects into inert placeholders and refuses every other global.
TorchScript archives are read with ``torch.jit.load``, whose C++ unpickler builds no Python objects;
the scripted code is never run, only its parameters are read. Every failure is one
:class:`~actionclip.errors.CheckpointError` line naming the file and the true cause: :func:`sniff`
looks at the first bytes before any reader runs, so random bytes, text, truncated archives and
pickles that reference code each get their own sentence (the readers' own errors blame the wrong
thing: a random file "references code", a text file fails with "(101)").
"""

from __future__ import annotations

import io
import pickle
import types
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from actionclip.errors import CheckpointError

__all__ = ["sniff", "load_safetensors", "is_torchscript", "torchscript_state_dict", "load_pickle", "first_line"]


_ZIP_MAGIC = b"PK\x03\x04"
_LFS_POINTER = b"version https://git-lfs"


def sniff(path: Path) -> str:
    """What ``path`` holds, from its first bytes: ``"zip"`` (torch's format, TorchScript),
    ``"pickle"`` (torch's legacy format, plain pickles), ``"safetensors"``; anything else raises the
    :class:`CheckpointError` that names what the file is instead (empty, text, a Git LFS pointer,
    unrecognised bytes)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if not head:
        raise CheckpointError(f"{path}: file is empty, not a checkpoint")
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5:  # PROTO opcode: protocols 2-5
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 1:
        return "safetensors"  # an 8-byte header length, then the JSON header
    if head.startswith(_LFS_POINTER):
        raise CheckpointError(f"{path}: a Git LFS pointer, not the weights (fetch the file itself: git lfs pull)")
    text = head.decode("utf-8", errors="replace")[:4000]  # a character cut at 4096 bytes is no evidence
    if "\ufffd" not in text and all(c.isprintable() or c.isspace() for c in text):
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        raise CheckpointError(f"{path}: a text file, not a checkpoint (it begins {first[:60]!r})" if first else
                              f"{path}: a text file of blank lines, not a checkpoint")
    raise CheckpointError(f"{path}: not a checkpoint: no weight format begins with these bytes "
                          f"({head[:8].hex(' ')}); corrupt, or a different kind of file")


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        cause = first_line(exc).removeprefix("Error while deserializing header: ")
        raise CheckpointError(f"{path}: a safetensors file with a bad header or data ({cause})") from None


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
        raise RefusedGlobal(f"{module}.{name}")


def _tolerant_load(file: Any, **kwargs: Any) -> Any:
    return _MetadataTolerantUnpickler(file, **kwargs).load()


def _tolerant_loads(data: bytes, **kwargs: Any) -> Any:
    return _MetadataTolerantUnpickler(io.BytesIO(data), **kwargs).load()


# Passed to torch.load as its pickle module: every path torch takes (zip or legacy format) goes through
# the same refusing unpickler, never through plain pickle.
_tolerant_pickle = types.SimpleNamespace(
    Unpickler=_MetadataTolerantUnpickler, load=_tolerant_load, loads=_tolerant_loads, __name__="actionclip_pickle"
)


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global that is not data (a function, a class that could run code)."""

    def __init__(self, qualname: str):
        super().__init__(f"refusing to load global {qualname}")
        self.qualname = qualname


def load_pickle(path: Path) -> Any:
    """A torch checkpoint (zip or legacy pickle format) without running any code in it."""
    kind = sniff(path)
    if kind == "zip":
        _check_torch_zip(path)
    elif kind != "pickle":
        raise CheckpointError(f"{path}: a {kind} file, not a PyTorch pickle")
    with warnings.catch_warnings():
        # torch warns (on stderr) about pickle protocols it did not write itself; a user has no use for it.
        warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            pass  # a global outside torch's allow-list: metadata we can make inert, or code we refuse
        except Exception as exc:
            raise CheckpointError(f"{path}: {_damage(kind, exc)}") from None
        try:
            return torch.load(str(path), map_location="cpu", weights_only=False, pickle_module=_tolerant_pickle)
        except RefusedGlobal as exc:
            raise CheckpointError(f"{path}: a pickle that references code ({exc.qualname}): refused, "
                                  "nothing was executed") from None
        except Exception as exc:
            raise CheckpointError(f"{path}: {_damage(kind, exc)}") from None


def _check_torch_zip(path: Path) -> None:
    """A zip file is a torch checkpoint when every member sits under one folder holding ``data.pkl``."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise CheckpointError(f"{path}: a truncated or corrupt zip archive (its central directory is missing "
                              "or damaged); download or copy the file again") from None
    if not any(n.count("/") == 1 and n.endswith("/data.pkl") for n in names):
        raise CheckpointError(f"{path}: a zip archive, but not a PyTorch checkpoint (no data.pkl inside)")


def _damage(kind: str, exc: BaseException) -> str:
    """The cause of a reader failure on a file whose format was recognised: it is damaged."""
    if kind == "zip":
        return f"a corrupt PyTorch archive ({first_line(exc)})"
    if isinstance(exc, EOFError) or any(w in str(exc) for w in ("truncated", "EOF", "out of input")):
        return "a truncated pickle (the file ends early); download or copy it again"
    return f"a corrupt pickle ({first_line(exc)})"


def first_line(exc: BaseException) -> str:
    """The first sentence of an error's message, whole (readers' messages run on for lines)."""
    text = str(exc).strip().splitlines()
    if not text:
        return type(exc).__name__
    line = text[0].split(". ")[0].rstrip(".")
    if len(line) > 200:
        line = line[:200].rsplit(" ", 1)[0] + " ..."
    return line
