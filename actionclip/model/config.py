"""What a model expects of its input and how it scores, apart from its weights; torch-free.

A :class:`ModelConfig` travels with every model (``model.config``), is filled from the model's
family, its checkpoint and its registry entry, and is written into exports, so that the ONNX
backend, the server and the index preprocess and score exactly as the torch model does. The next
model families differ here only in data: X-CLIP and ViFi-CLIP use ImageNet's mean/std and a single
bare-label template, ActionCLIP CLIP's mean/std and 16 templates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actionclip.errors import UsageError
from actionclip.text.templates import TEMPLATES, check_template
from actionclip.video.preprocess import Preprocessing
from actionclip.video.sampling import SAMPLING_MODES

__all__ = ["ModelConfig", "MAX_LOGIT_SCALE", "UNCAPPED_LOGIT_SCALE"]

# CLIP caps its learned temperature at 100; ActionCLIP's test script uses exactly 100.
MAX_LOGIT_SCALE = 100.0
#: "no cap" (X-CLIP, ViFi-CLIP, Open-VCLIP and FROSTER never cap ``exp(logit_scale)``): a bound the
#: learned temperature never reaches, finite so that exported JSON stays valid JSON
UNCAPPED_LOGIT_SCALE = 1e4


@dataclass(frozen=True)
class ModelConfig:
    """A model's input and scoring conventions.

    Attributes:
        frames: T, frames sampled per clip.
        preprocessing: resolution, resize rule, interpolation, mean/std.
        templates: the prompt templates labels are embedded in by default (scores are averaged
            over them).
        sampling: how a clip's frames are picked at test time (``center``: TSN segment centres).
        max_logit_scale: the cap on ``exp(logit_scale)`` (CLIP's 100).
    """

    frames: int = 8
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    templates: tuple[str, ...] = tuple(TEMPLATES)
    sampling: str = "center"
    max_logit_scale: float = MAX_LOGIT_SCALE

    def __post_init__(self) -> None:
        if int(self.frames) < 1:
            raise UsageError(f"frames must be at least 1, got {self.frames}")
        if self.sampling not in SAMPLING_MODES:
            raise UsageError(f"sampling {self.sampling!r}: expected one of {', '.join(SAMPLING_MODES)}")
        templates = tuple(check_template(t) for t in self.templates)
        if not templates:
            raise UsageError("a model needs at least one prompt template")
        object.__setattr__(self, "templates", templates)
        object.__setattr__(self, "frames", int(self.frames))

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with ``changes``; ``None`` values are ignored (so optional overrides pass through)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if "templates" in changes:
            changes["templates"] = tuple(changes["templates"])
        return dataclasses.replace(self, **changes)

    def for_weights(self, resolution: int) -> ModelConfig:
        """This config with the input resolution the weights were built for (the weights fix it; the
        rest of the preprocessing stays the config's)."""
        if self.preprocessing.resolution == resolution:
            return self
        return dataclasses.replace(self, preprocessing=dataclasses.replace(self.preprocessing,
                                                                           resolution=int(resolution)))

    def updated(self, overrides: Mapping[str, Any] | None) -> ModelConfig:
        """A copy with ``overrides`` in :meth:`to_dict`'s form applied (``preprocessing`` may give
        only some of its fields), e.g. a registry entry's ``{"templates": [...]}``."""
        if not overrides:
            return self
        data = self.to_dict()
        for key, value in overrides.items():
            if key == "preprocessing":
                data["preprocessing"] = {**data["preprocessing"], **dict(value)}
            elif key in data:
                data[key] = value
            else:
                raise UsageError(f"unknown model config field {key!r}")
        return ModelConfig.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "preprocessing": self.preprocessing.to_dict(),
                "templates": list(self.templates), "sampling": self.sampling,
                "max_logit_scale": self.max_logit_scale}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        kwargs: dict[str, Any] = {k: data[k] for k in ("frames", "sampling", "max_logit_scale") if k in data}
        if "preprocessing" in data:
            kwargs["preprocessing"] = Preprocessing.from_dict(data["preprocessing"])
        if "templates" in data:
            kwargs["templates"] = tuple(data["templates"])
        return cls(**kwargs)
