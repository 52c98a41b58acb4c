"""The text side of an index's model, alone: what ``actionclip search`` needs to embed a query.

A search embeds one short text. Loading the whole model for it means importing torch, reading the
whole checkpoint (the image tower is more than half of it) and building both towers, seconds of
work for a few milliseconds of text encoding. When the index's model is a plain CLIP text encoder
(ActionCLIP in its original or mmaction2 file, recorded in fp32), :func:`text_side` gives a
:class:`TextSide` instead: the checkpoint's zip is read by a restricted unpickler that knows only
tensors and ordered dicts (nothing else in the file is ever executed: as safe as
``torch.load(weights_only=True)``) and maps each tensor onto the file (``numpy.memmap``: only the
text weights are ever read, and lazily); the CLIP text transformer then runs in numpy. Torch is not
imported at all.

A :class:`TextSide` is a :class:`~actionclip.model.base.VideoTextModel` with the numpy backend, so
:func:`actionclip.workflows.label_cache.encode_labels` embeds queries through it exactly as through the
full model (same prompts, same batching, same normalisation) and caches them on disk under its own
key: a repeated query reads its embedding instead of encoding it. It matches the torch model's
embeddings to float32 rounding (tests/test_search_fast.py); any other model (X-CLIP, whose text
depends on the video; Open-VCLIP; a bf16 index; a TorchScript or Hugging Face file) returns None and
the caller loads the whole model as before.
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from actionclip.model.base import VideoTextModel

__all__ = ["text_side", "TextSide", "read_torch_zip"]

_ELIGIBLE = {"actionclip.model.actionclip.ActionCLIP"}
_STORAGES = {"FloatStorage": np.float32, "HalfStorage": np.float16, "DoubleStorage": np.float64,
             "LongStorage": np.int64, "IntStorage": np.int32}


class _Storage:
    def __init__(self, name: str) -> None:
        if name not in _STORAGES:
            raise pickle.UnpicklingError(f"torch.{name}")
        self.dtype = np.dtype(_STORAGES[name])


class _Unpickler(pickle.Unpickler):
    """Tensors (as memory maps), ordered dicts and plain values; anything else is refused."""

    def __init__(self, file: Any, archive: zipfile.ZipFile, path: Path, prefix: str) -> None:
        super().__init__(file)
        self.archive, self.path, self.prefix = archive, path, prefix

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return lambda data, _requires_grad, _hooks: data
        if module == "torch" and name.endswith("Storage"):
            return _Storage(name)
        raise pickle.UnpicklingError(f"{module}.{name} is not a tensor")

    def persistent_load(self, pid: Any) -> Any:
        kind, storage, key, _location, numel = pid
        if kind != "storage" or not isinstance(storage, _Storage):
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        info = self.archive.getinfo(f"{self.prefix}data/{key}")
        if info.compress_type != zipfile.ZIP_STORED:
            raise pickle.UnpicklingError("a compressed tensor")
        with open(self.path, "rb") as f:  # the member's data starts after its local header
            f.seek(info.header_offset)
            head = f.read(30)
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        offset = info.header_offset + 30 + name_len + extra_len
        if numel == 0:
            return np.zeros(0, storage.dtype)
        return np.memmap(self.path, dtype=storage.dtype, mode="r", offset=offset, shape=(int(numel),))


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    item = storage.itemsize
    return np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * item for s in stride), writeable=False)


def read_torch_zip(path: str | os.PathLike) -> Any:
    """The object a ``torch.save`` zip file holds, with every tensor a read-only numpy memory map.
    Raises ``pickle.UnpicklingError`` (or ``zipfile.BadZipFile``) for anything but tensors and containers."""
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        pkl = next((n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise zipfile.BadZipFile("no data.pkl")
        prefix = pkl[: -len("data.pkl")]
        with archive.open(pkl) as f:
            return _Unpickler(f, archive, path, prefix).load()


def _clip_text_weights(obj: Any) -> dict[str, np.ndarray] | None:
    """The CLIP text weights (OpenAI names) of an ActionCLIP original or mmaction2 checkpoint."""
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("model_state_dict"), dict):
        sd, prefix = obj["model_state_dict"], ""
        if "module.ln_final.weight" in sd:
            prefix = "module."
    elif isinstance(obj.get("state_dict"), dict):
        sd, prefix = obj["state_dict"], "clip."
    else:
        return None
    names = ("token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias", "text_projection")
    out = {k[len(prefix):]: v for k, v in sd.items() if isinstance(k, str) and k.startswith(prefix)
           and (k[len(prefix):] in names or k[len(prefix):].startswith("transformer.resblocks."))}
    return out if all(n in out for n in names) else None


def text_side(recorded: dict[str, Any], *, dtype: str | None = None, device: str = "auto") -> TextSide | None:
    """The text side of the model an index recorded (``index.json``'s ``model``), or None when only
    the whole model will do (see the module notes). ``dtype``/``device``: what the caller asked for."""
    from actionclip.loading.identity import fingerprint
    from actionclip.model.config import ModelConfig

    source = recorded.get("source")
    if recorded.get("class") not in _ELIGIBLE or (dtype or recorded.get("dtype")) != "fp32":
        return None
    if device not in ("auto", "cpu") or not source or not os.path.isfile(source) or not zipfile.is_zipfile(source):
        return None
    try:
        if recorded.get("fingerprint") != fingerprint(source):
            return None  # not the file the index was built with: the full path says so in one line
        weights = _clip_text_weights(read_torch_zip(source))
        config = ModelConfig.from_dict(recorded["config"])
    except (pickle.UnpicklingError, zipfile.BadZipFile, OSError, KeyError, ValueError, TypeError, EOFError):
        return None
    if weights is None:
        return None
    return TextSide(weights, config, fingerprint=recorded["fingerprint"], name=recorded.get("name"))


class TextSide(VideoTextModel):
    """CLIP's text transformer in numpy over memory-mapped weights (causal attention, QuickGELU,
    pooled at the end-of-text token, projected), as :class:`actionclip.model.clip.TextTransformer`."""

    def __init__(self, weights: dict[str, np.ndarray], config: Any, *, fingerprint: str | None,
                 name: str | None = None) -> None:
        self.w = weights
        self.config = config
        self.fingerprint = fingerprint
        self.name = name
        self._context_length = int(weights["positional_embedding"].shape[0])
        self.width = int(weights["ln_final.weight"].shape[0])
        self.heads = max(1, self.width // 64)  # OpenAI CLIP's rule, which the torch model follows too
        self.layers = len({k.split(".")[2] for k in weights if k.startswith("transformer.resblocks.")})
        # device and dtype: the contract's numpy defaults (cpu, float32)

    def _f(self, name: str) -> np.ndarray:
        return np.asarray(self.w[name], dtype=np.float32)

    def _ln(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-5) * self._f(f"{name}.weight") + self._f(f"{name}.bias")

    def encode_tokens(self, tokens: Any) -> np.ndarray:
        ids = np.asarray(tokens, dtype=np.int64)
        eot = ids.argmax(axis=-1)
        if ids.shape[0] == 0:
            return np.zeros((0, self._f("text_projection").shape[1]), np.float32)
        ids = ids[:, : int(eot.max()) + 1]  # causal: positions past the last end token change nothing
        n, length = ids.shape
        x = np.asarray(self.w["token_embedding.weight"][ids], np.float32) + self._f("positional_embedding")[:length]
        x = x.reshape(n * length, self.width)  # linear layers as 2-D products: one BLAS call each
        mask = np.triu(np.full((length, length), -np.inf, np.float32), 1)
        heads, dim = self.heads, self.width // self.heads
        for i in range(self.layers):
            p = f"transformer.resblocks.{i}."
            qkv = self._linear(self._ln(x, p + "ln_1"), p + "attn.in_proj")
            q, k, v = (np.ascontiguousarray(part.reshape(n, length, heads, dim).transpose(0, 2, 1, 3))
                       for part in np.split(qkv, 3, axis=-1))
            att = np.matmul(q, np.ascontiguousarray(k.transpose(0, 1, 3, 2))) / np.float32(np.sqrt(dim)) + mask
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            out = np.matmul(att, v).transpose(0, 2, 1, 3).reshape(n * length, self.width)
            x = x + self._linear(out, p + "attn.out_proj")
            h = self._linear(self._ln(x, p + "ln_2"), p + "mlp.c_fc")
            h = h * (1.0 / (1.0 + np.exp(-1.702 * h)))  # QuickGELU
            x = x + self._linear(h, p + "mlp.c_proj")
        x = self._ln(x, "ln_final").reshape(n, length, self.width)
        return (x[np.arange(n), eot] @ self._f("text_projection")).astype(np.float32)

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        weight = self.w[f"{name}_weight" if name.endswith("in_proj") else f"{name}.weight"]
        bias = self.w[f"{name}_bias" if name.endswith("in_proj") else f"{name}.bias"]
        return x @ np.ascontiguousarray(weight, dtype=np.float32).T + np.asarray(bias, np.float32)

    def encode_video(self, pixels: Any) -> Any:
        raise NotImplementedError("the text side of a model encodes no video")

    @property
    def logit_scale(self) -> float:
        raise NotImplementedError("the text side of a model scores nothing")
