"""actionclip: zero-shot action recognition and detection in video (ActionCLIP, Wang et al. 2021).

Quick start::

    import actionclip
    model = actionclip.load("vit-b-32-8f")          # downloads on first use
    model.classify("video.mp4", ["running", "walking", "sitting"])

Heavy modules (torch, PyAV) are imported on first attribute access so that ``import actionclip``
and ``actionclip --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "ActionCLIP": "actionclip.model",
    "load": "actionclip.model",
    "tokenize": "actionclip.tokenizer",
    "TEMPLATES": "actionclip.templates",
    "list_models": "actionclip.registry",
    "read_video": "actionclip.video",
    "ActionCLIPError": "actionclip.errors",
    "CheckpointError": "actionclip.errors",
    "DownloadError": "actionclip.errors",
    "VideoError": "actionclip.errors",
    "UsageError": "actionclip.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'actionclip' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
