"""The ActionCLIP family: ActionCLIP checkpoints (original, ports, our own) and bare OpenAI CLIP
(ActionCLIP with mean pooling) build :class:`actionclip.model.actionclip.ActionCLIP`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from actionclip.families.record import Family, Fetch

if TYPE_CHECKING:
    from actionclip.model.actionclip import ActionCLIP
    from actionclip.model.config import ModelConfig
    from actionclip.model.loaded import LoadedCheckpoint

__all__ = ["FAMILIES"]


def _config() -> ModelConfig:
    from actionclip.model.config import ModelConfig

    return ModelConfig()


def _build(ckpt: LoadedCheckpoint, config: ModelConfig, fetch: Fetch) -> ActionCLIP:
    from actionclip.model.actionclip import ActionCLIP

    return ActionCLIP.from_checkpoint(ckpt, config)


FAMILIES = (Family("actionclip", _config, _build,
                   "actionclip._dev.weights:write_checkpoint"),)
