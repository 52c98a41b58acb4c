"""Label embeddings that persist across runs, so the same labels are embedded once per model.

Classifying one video against the 400 Kinetics labels means encoding 6,400 prompts (16 templates):
~14 s on a CPU, on every run, while the video itself takes a fraction of a second. The prompts'
embeddings depend only on the model's weights, its precision and the prompt, so
:func:`encode_labels` keeps them on disk and a second run with the same labels starts at once. Used
by ``classify``, ``classify --index``, ``eval``, ``timeline``, ``watch`` and the server.

Key. A model's entries live under ``<cache>/label-embeddings/<model key>/<template key>/``. The
model key hashes ``model.fingerprint`` (set by :func:`actionclip.load`; see
:mod:`actionclip.loading.identity`: the registry's hash, or size + mtime + first and last MiB of the
file), the model's :class:`~actionclip.model.config.ModelConfig`, its class, precision and context
length. Within a template's folder an entry is keyed by :func:`actionclip.text.labels.label_key`
(what the tokenizer sees of a label). A model whose label features are not one row per template
(``label_features_per_template = False``: Open-VCLIP and FROSTER average their template ensemble)
keeps one folder per *set* of templates instead. A model without a fingerprint (built in code, or put
in training mode) is never cached.

Concurrency. Entries are written in *shards*: each run that computes new labels writes one ``.npz``
file (label keys + float32 embeddings) through :func:`actionclip.files.atomic_path`, under a name
derived from its content; a reader loads every shard of the template. No file is ever modified in
place, so two processes writing at once each add a complete shard and neither can corrupt the other.
When a template has more than :data:`MAX_SHARDS` shards, the run merges them into one new shard
and then deletes the ones it merged; a reader that lists a shard just before it is deleted loses
nothing (the merged shard holds the same entries) and at worst recomputes them. A shard that cannot
be read is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from actionclip.text.labels import check_labels, label_key
from actionclip.text.templates import resolve_templates

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel

__all__ = ["encode_labels", "model_key", "cache_root", "MAX_SHARDS"]

MAX_SHARDS = 8


def cache_root() -> Path:
    """``<actionclip cache>/label-embeddings`` (``ACTIONCLIP_CACHE`` moves it with the model cache)."""
    from actionclip.loading.download import cache_dir

    return cache_dir() / "label-embeddings"


def _sha(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def model_key(model: VideoTextModel) -> str | None:
    """What a model's label embeddings depend on, hashed; None when the model has no fingerprint."""
    fp = model.fingerprint
    if not fp:
        return None
    kind = type(model)
    return _sha({
        "fingerprint": fp,
        "config": model.config.to_dict(),
        "class": f"{kind.__module__}.{kind.__qualname__}",
        "dtype": str(model.dtype),
        "context_length": int(model.context_length),
    })


def _shards(folder: Path) -> list[Path]:
    """The finished shards (not another writer's hidden temporary files)."""
    return sorted(p for p in folder.glob("*.npz") if not p.name.startswith("."))


def _read_shards(folder: Path) -> dict[str, np.ndarray]:
    import zipfile

    entries: dict[str, np.ndarray] = {}
    for shard in _shards(folder):
        try:
            with np.load(shard, allow_pickle=False) as data:
                keys, emb = data["keys"], data["emb"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # deleted by a merge, or damaged
            continue
        if emb.ndim == 2 and len(keys) == len(emb):
            entries.update(zip(keys.tolist(), emb))
    return entries


def _write_shard(folder: Path, keys: list[str], emb: np.ndarray) -> Path | None:
    """One new shard, atomically; a cache that cannot be written only costs recomputation."""
    from actionclip.errors import OutputError
    from actionclip.files import atomic_path

    name = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:24] + ".npz"
    try:
        with atomic_path(folder / name) as tmp:
            with open(tmp, "wb") as f:  # np.savez would append ".npz" to a path
                np.savez(f, keys=np.asarray(keys, dtype=str), emb=np.ascontiguousarray(emb, dtype=np.float32))
    except OutputError:
        return None
    return folder / name


def _merge(folder: Path) -> None:
    """Fold many shards into one (written first), then remove the ones folded in."""
    shards = _shards(folder)
    if len(shards) <= MAX_SHARDS:
        return
    entries = _read_shards(folder)
    if not entries:
        return
    keys = sorted(entries)
    merged = _write_shard(folder, keys, np.stack([entries[k] for k in keys]))
    if merged is None:
        return
    for shard in shards:
        if shard != merged:
            with contextlib.suppress(OSError):
                shard.unlink()


def encode_labels(model: VideoTextModel, labels: Sequence[str], templates: Sequence[str] | str | None = None, *,
                  cache: bool = True) -> Any:
    """``model.encode_labels(labels, templates)``, with embeddings kept on disk between runs.

    Returns what :meth:`~actionclip.model.base.VideoTextModel.encode_labels` returns: L2-normalised
    ``[K templates, L labels, D]`` float32 in the model's backend. Only labels missing from the cache
    go through the text encoder (all their templates at once). ``cache=False``, or a model without a
    fingerprint, skips the disk entirely.
    """
    labels = check_labels(labels)
    key = model_key(model) if cache else None
    if key is None:
        return model.encode_labels(labels, templates)
    templates = resolve_templates(templates=templates, default=model.config.templates)
    if model.label_features_per_template:
        folders = [cache_root() / key / _sha(t) for t in templates]  # one row per template: shared across sets
    else:  # one row per label for the whole template set (Open-VCLIP's ensemble mean): keyed by the set
        folders = [cache_root() / key / _sha(list(templates))]
    found = [_read_shards(folder) for folder in folders]
    wanted = [label_key(label) for label in labels]
    missing = [label for label, k in zip(labels, wanted) if any(k not in entries for entries in found)]
    if missing:
        fresh = model.ops.to_numpy(model.encode_labels(missing, templates))  # [K, M, D]
        missing_keys = [label_key(label) for label in missing]
        for folder, entries, rows in zip(folders, found, fresh):
            entries.update(zip(missing_keys, rows))
            _write_shard(folder, missing_keys, rows)
            _merge(folder)
    out = np.stack([np.stack([entries[k] for k in wanted]) for entries in found]).astype(np.float32, copy=False)
    return model.from_numpy(out, on_device=True)
