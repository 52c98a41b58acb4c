"""Where downloaded models live, and whether the network may be used.

Kept apart from the downloader so that everything that looks into the cache (the Hugging Face hub
path, the ``models`` command) can ask without importing the HTTP machinery.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "is_offline"]

_TRUE = {"1", "true", "yes", "on"}


def cache_dir() -> Path:
    """The model cache directory (not created here).

    ``$ACTIONCLIP_CACHE``, else ``$XDG_CACHE_HOME/actionclip``, else ``~/.cache/actionclip``.
    """
    explicit = os.environ.get("ACTIONCLIP_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "actionclip"
    return Path.home() / ".cache" / "actionclip"


def is_offline() -> bool:
    """True when ``ACTIONCLIP_OFFLINE`` (or Hugging Face's ``HF_HUB_OFFLINE``) is set to 1/true."""
    return any(
        os.environ.get(var, "").strip().lower() in _TRUE for var in ("ACTIONCLIP_OFFLINE", "HF_HUB_OFFLINE")
    )
