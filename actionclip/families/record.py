"""The record a model family is described by (:class:`Family`); see :mod:`actionclip.families`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actionclip.model.config import ModelConfig
    from actionclip.model.loaded import LoadedCheckpoint
    from actionclip.model.module import VideoModule

__all__ = ["Family", "Fetch"]

#: a registry name -> that model's CLIP state dict (downloaded and cached); given by the loader
Fetch = Callable[[str], Mapping[str, Any]]


@dataclass(frozen=True)
class Family:
    """A model family.

    Attributes:
        name: the family's name, as registry entries and checkpoints give it.
        default_config: () -> the family's :class:`ModelConfig` before the file and the registry entry.
        build: (checkpoint, config, fetch) -> the model, on the CPU in fp32.
        test_weights: ``module:function`` writing random weights in the family's formats (tests,
            benchmarks).
    """

    name: str
    default_config: Callable[[], ModelConfig]
    build: Callable[[LoadedCheckpoint, ModelConfig, Fetch], VideoModule]
    test_weights: str
