"""actionclip: zero-shot action recognition and detection in video (ActionCLIP, Wang et al. 2021).

Quick start::

    import actionclip
    model = actionclip.load("vit-b-32-8f")          # downloads on first use
    model.classify("video.mp4", ["running", "walking", "sitting"])

Heavy modules (torch, PyAV) are imported on first attribute access so that ``import actionclip``
and ``actionclip --help`` stay fast. The package's folders follow the pipeline (see
docs/ARCHITECTURE.md): ``video`` (files and streams -> normalised views), ``text`` (labels,
templates, tokens), ``model`` (views and tokens -> embeddings -> scores), ``loading`` (names and
files -> models), ``temporal`` (scores over time: timelines, live), ``training``, ``onnx``, ``cli``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "load": "actionclip.loading.load",
    "ActionCLIP": "actionclip.model.actionclip",
    "VideoTextModel": "actionclip.model.base",
    "ModelConfig": "actionclip.model.config",
    "Preprocessing": "actionclip.video.preprocess",
    "tokenize": "actionclip.text.tokenizer",
    "TEMPLATES": "actionclip.text.templates",
    "list_models": "actionclip.loading.registry",
    "download": "actionclip.loading.download",
    "read_video": "actionclip.video.decode",
    "index": "actionclip.collection.build",
    "Index": "actionclip.collection.query",
    "open_index": "actionclip.collection.query",
    "ActionCLIPError": "actionclip.errors",
    "CheckpointError": "actionclip.errors",
    "DownloadError": "actionclip.errors",
    "VideoError": "actionclip.errors",
    "UsageError": "actionclip.errors",
    "OutputError": "actionclip.errors",
    # evaluation protocols (docs/evaluation.md)
    "evaluate_detection": "actionclip.evaluation.activitynet",
    "evaluate_thumos14": "actionclip.evaluation.thumos14",
    "evaluate_retrieval": "actionclip.evaluation.retrieval",
    "retrieval_metrics": "actionclip.evaluation.retrieval",
    "evaluate_open_vocabulary": "actionclip.evaluation.splits",
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
