"""How ``model.timeline(...)`` and ``model.watch(...)`` reach workflows that live above the model.

Timelines and live streams are workflows (:mod:`actionclip.temporal`) built on the model contract;
the model must not import them (that would run the layers backwards, see tests/test_layout.py).
So the workflow layer registers them here when it is imported, and the model's conveniences look
them up by name. :func:`actionclip.load` imports the workflow layer, so every loaded model has them;
calling one on a model built by hand before :mod:`actionclip.temporal` was imported is one clear
error naming what to import. Torch- and numpy-free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actionclip.errors import UsageError

__all__ = ["register", "workflow"]

_WORKFLOWS: dict[str, Callable[..., Any]] = {}


def register(name: str, function: Callable[..., Any]) -> None:
    """Make ``model.<name>(...)`` call ``function(model, ...)``."""
    _WORKFLOWS[name] = function


def workflow(name: str) -> Callable[..., Any]:
    """The function registered as ``name``."""
    try:
        return _WORKFLOWS[name]
    except KeyError:
        raise UsageError(f"model.{name}: the workflow is not loaded; import actionclip.temporal first "
                         "(actionclip.load does)") from None
