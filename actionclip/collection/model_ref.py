"""The model an index was built with: recorded once, checked and reloaded by every later run.

An index is only meaningful with the exact weights that embedded its videos. When it is created,
:func:`describe` records what :mod:`actionclip.loading.identity` knows of the model (name or path,
cheap fingerprint, full SHA-256 of the file, config, precision); :func:`load_recorded` loads it
again for ``search`` and ``classify --index`` (no ``--model`` needed), and :func:`check` refuses a
model whose weights are not those: a fingerprint that matches is enough; otherwise (the file was
copied or touched) the full hash decides.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actionclip.errors import UsageError

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel

__all__ = ["describe", "check", "target", "load_recorded"]



def describe(model: VideoTextModel, requested: str | os.PathLike | None, *, full_hash: bool = True) -> dict[str, Any]:
    """What to record about ``model`` (loaded from ``requested``, a name or path, if known)."""
    from actionclip.loading.identity import checkpoint_size, file_sha256, model_id

    source = model.source
    fp = model.fingerprint
    sha = fp.split(":", 1)[1] if fp and fp.startswith("sha256:") else None
    if sha is None and full_hash and source and Path(source).exists():
        sha = file_sha256(source)
    kind = type(model)
    return {
        "id": model_id(requested) if requested is not None else (model_id(source) if source else model.name),
        "name": model.name,
        "source": source,
        "fingerprint": fp,
        "sha256": sha,
        "size": checkpoint_size(source) if source and Path(source).exists() else None,
        "class": f"{kind.__module__}.{kind.__qualname__}",
        "config": model.config.to_dict(),
        "dtype": model.dtype_name,
    }


def check(recorded: dict[str, Any], model: VideoTextModel, where: str | os.PathLike) -> None:
    """Raise a one-line :class:`UsageError` unless ``model`` has the weights the index recorded."""
    from actionclip.loading.identity import file_sha256

    label = recorded.get("name") or recorded.get("id")
    fp = model.fingerprint
    if recorded.get("fingerprint") and fp == recorded["fingerprint"]:
        return
    source = model.source
    if recorded.get("sha256") and source and Path(source).exists():
        if file_sha256(source) == recorded["sha256"]:
            return
        raise UsageError(f"{where}: the model file {source} is not the one this index was built with "
                         f"({label}: its content changed); rebuild the index or restore that file")
    if not recorded.get("fingerprint") and not fp and recorded.get("config") == model.config.to_dict():
        return  # models built in code carry no identity: the caller vouches for them
    raise UsageError(f"{where}: built with model {label}, not with this one; "
                     "use the index's own model or build a new index")


def target(recorded: dict[str, Any], where: str | os.PathLike) -> str:
    """What to load for the recorded model: its registry name, else its file (which must exist)."""
    from actionclip.loading.registry import find_spec

    name, source = recorded.get("name"), recorded.get("source")
    if name and find_spec(name) is not None:
        return name
    if source and Path(source).exists():
        return source
    if source:
        raise UsageError(f"{where}: the model file this index was built with is missing: {source}")
    raise UsageError(f"{where}: the index does not record a model file (it was built with a model "
                     "object); pass that model explicitly")


def load_recorded(recorded: dict[str, Any], where: str | os.PathLike, *, device: str = "auto",
                  dtype: str | None = None) -> Any:
    """Load the index's model again (its registry name, else its file) and :func:`check` it."""
    from actionclip.loading.load import load

    model = load(target(recorded, where), device=device, dtype=dtype or recorded.get("dtype") or "auto")
    check(recorded, model, where)
    return model
