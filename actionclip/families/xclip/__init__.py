"""The X-CLIP family: its release files and Hugging Face folders build
:class:`actionclip.families.xclip.model.XCLIP`, with X-CLIP's own input and scoring conventions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from actionclip.families.record import Family, Fetch

if TYPE_CHECKING:
    from actionclip.families.xclip.model import XCLIP
    from actionclip.model.config import ModelConfig
    from actionclip.model.loaded import LoadedCheckpoint

__all__ = ["FAMILIES", "default_config"]


def default_config() -> ModelConfig:
    """X-CLIP's input and scoring conventions: ImageNet mean/std, bilinear resize (mmcv's, which
    its test pipeline uses), short side 256 -> centre 224, the bare label as the prompt, TSN
    segment centres, and an uncapped temperature."""
    from actionclip.model.config import UNCAPPED_LOGIT_SCALE, ModelConfig
    from actionclip.video.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

    return ModelConfig(frames=8, templates=("{}",), max_logit_scale=UNCAPPED_LOGIT_SCALE,
                       preprocessing=Preprocessing(mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear"))


def _build(ckpt: LoadedCheckpoint, config: ModelConfig, fetch: Fetch) -> XCLIP:
    from actionclip.families.xclip.model import XCLIP

    return XCLIP.from_checkpoint(ckpt, config)


FAMILIES = (Family("xclip", default_config, _build,
                   "actionclip._dev.xclip_weights:write_xclip_checkpoint"),)
