"""Which model is this? Identities that outlive a run: for caches and for indexes built with it.

Two things remember a model across runs: the label-embedding cache (:mod:`actionclip.workflows.label_cache`)
and a video index (:mod:`actionclip.collection`). Both need a key that changes when the weights
change, and is cheap to compute on every run.

* :func:`model_id`: what the user named: a registry name (lower-cased) or the resolved path of a
  checkpoint file or folder. It says *where* the model is, not *what* it is.
* :func:`fingerprint`: a cheap content key of a checkpoint file or folder: its size, its
  modification time (ns) and a SHA-256 of its first and last MiB. Hashing a 600 MB checkpoint on
  every run would cost a second or more; this reads 2 MiB. It changes when the file is rewritten,
  replaced or touched; a copy of the file (new mtime) gets a new fingerprint, so it is recomputed
  rather than trusted. Registry models use the registry's published SHA-256 instead (the download
  verified it).
* :func:`file_sha256`: the full hash, computed once when an index is created, so that an index can
  still accept its model after the file was copied or touched (same content, new fingerprint).

:func:`actionclip.load` sets ``model.fingerprint`` and ``model.source``. A torch model switched to
training mode drops its fingerprint (its weights are about to differ from the file's).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["model_id", "fingerprint", "file_sha256", "checkpoint_size"]

_EDGE = 1 << 20  # bytes hashed at each end of a file by fingerprint()
_CHUNK = 1 << 20


def model_id(name_or_path: str | os.PathLike) -> str:
    """A registry name (normalised) or the real path of a checkpoint."""
    path = Path(os.fspath(name_or_path)).expanduser()
    return str(path.resolve()) if path.exists() else os.fspath(name_or_path).strip().lower()


def _files(path: Path) -> list[Path]:
    """The file itself, or every file below a checkpoint folder (sorted, hidden ones skipped)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [path]


def fingerprint(path: str | os.PathLike) -> str:
    """A cheap content key of a checkpoint file or folder (see the module notes)."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in _files(root):
        st = file.stat()
        digest.update(f"{file.relative_to(root) if root.is_dir() else ''}|{st.st_size}|{st.st_mtime_ns}|".encode())
        with open(file, "rb") as f:
            digest.update(f.read(_EDGE))
            if st.st_size > 2 * _EDGE:
                f.seek(-_EDGE, os.SEEK_END)
                digest.update(f.read(_EDGE))
    return "fp:" + digest.hexdigest()[:32]


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a checkpoint file (of every file, with its relative name, for a folder)."""
    root = Path(path)
    files = _files(root)
    digest = hashlib.sha256()
    for file in files:
        if root.is_dir():
            digest.update(f"{file.relative_to(root)}\0".encode())
        with open(file, "rb") as f:
            while block := f.read(_CHUNK):
                digest.update(block)
    return digest.hexdigest()


def checkpoint_size(path: str | os.PathLike) -> int:
    """Bytes of a checkpoint file, or of every file in a checkpoint folder."""
    return sum(file.stat().st_size for file in _files(Path(path)))
