"""Open-VCLIP (Weng et al., ICML 2023) and FROSTER (Huang et al., ICLR 2024): CLIP whose image tower
attends across neighbouring frames, scored the way their test code scores.

Both are ActionCLIP's structure (CLIP + mean pooling, :class:`~actionclip.model.actionclip.ActionCLIP`)
with four differences, each taken from their code (``TemporalClipVideo``):

* **image tower**: every block attends to the previous and next frame's keys and values too
  (:mod:`actionclip.families.vclip.neighbours`); no parameter is added, so the weights are a CLIP state dict.
  A frame's embedding depends on its clip, so ``frame_independent`` is False (timelines encode each
  window whole) and there is no per-frame ``encode_image``.
* **video embedding**: the mean of the frames' *unit* embeddings. The original scores every frame
  against the classes and averages the scores; the mean of unit vectors scored once is the same.
* **labels**: a label's embedding is the mean of its unit prompt embeddings over the templates,
  normalised again (their ``achieve_csf_matrix``), one classifier row per label, instead of
  ActionCLIP's mean of per-template softmaxes. :meth:`OpenVCLIP.encode_labels` returns it as a
  single "template" ``[1, L, D]``, so everything built on ``encode_labels`` + ``probabilities`` is
  unchanged.
* **logits**: ``logit_scale * video . label`` without normalising the video embedding again (a
  mean of unit vectors is shorter than 1): our cosine times the embedding's length.

Their templates are 28 sentences (``a photo of {}.`` ... ``a demonstration of a person practicing
{}.``); FROSTER adds the bare label and writes its prompts differently (:class:`FROSTER`). Weights,
test-time weight interpolation and formats are :mod:`actionclip.families.vclip`' and
:mod:`actionclip.families.vclip.formats`' business.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from actionclip.errors import CheckpointError, UsageError
from actionclip.families.vclip.neighbours import clip_frames, use_neighbour_attention
from actionclip.model.actionclip import ActionCLIP
from actionclip.model.clip import CLIP
from actionclip.model.config import ModelConfig
from actionclip.model.fusion import Fusion
from actionclip.model.scoring import ops_for
from actionclip.text.labels import check_labels
from actionclip.text.templates import resolve_templates

__all__ = ["OpenVCLIP", "FROSTER", "OPENVCLIP_TEMPLATES", "FROSTER_TEMPLATES"]

_OPENERS = ("a photo of", "a video of", "a example of", "a demonstration of")
_SUBJECTS = ("", "a person ", "a person using ", "a person doing ", "a person during ", "a person performing ",
             "a person practicing ")
#: Open-VCLIP's 28 templates, in their order (``text_prompt`` in their ``temporalclip_video_model.py``).
OPENVCLIP_TEMPLATES: tuple[str, ...] = tuple(f"{opener} {subject}{{}}." for opener in _OPENERS for subject in _SUBJECTS)
#: FROSTER's: the same 28 and the bare label last.
FROSTER_TEMPLATES: tuple[str, ...] = OPENVCLIP_TEMPLATES + ("{}",)


class OpenVCLIP(ActionCLIP):
    """Open-VCLIP. Build it with :func:`actionclip.load` from a released checkpoint."""

    family = "openvclip"
    frame_independent = False
    #: why :func:`actionclip.onnx.export.export_onnx` refuses this model (its graphs are per-frame)
    onnx_export_error = ("ONNX export covers models that encode frames one by one and score by cosine; "
                         "Open-VCLIP/FROSTER frames attend to their neighbours and score differently")

    def __init__(self, clip: CLIP, fusion: Fusion, config: ModelConfig | int = 8, **kwargs: Any):
        if fusion.kind != "meanP":
            raise CheckpointError(f"{type(self).__name__} pools frames by their mean, not {fusion.kind}")
        super().__init__(clip, fusion, config, **kwargs)
        use_neighbour_attention(clip.visual.transformer)

    # --- video ------------------------------------------------------------------------------------

    def encode_image(self, images: Any) -> torch.Tensor:
        raise UsageError(f"{type(self).__name__} frames attend to their neighbours: encode whole clips "
                         "with encode_video([B, T, 3, R, R])")

    def encode_video(self, pixels: Any) -> torch.Tensor:
        """Normalised clips ``[B, T, 3, R, R]`` -> the mean of the frames' unit embeddings ``[B, D]``."""
        if pixels.ndim != 5:
            raise ValueError(f"pixels must be [B, T, 3, H, W], got shape {tuple(pixels.shape)}")
        b, t = pixels.shape[:2]
        with clip_frames(t):
            frames = self.clip.visual(self._input(pixels.reshape(b * t, *pixels.shape[2:])))
        return self.fuse(F.normalize(frames, dim=-1).view(b, t, -1))

    # --- labels and scores --------------------------------------------------------------------------

    def prompts(self, labels: Sequence[str], templates: Sequence[str]) -> list[str]:
        """Every label in every template, template-major (``K * L`` strings)."""
        return [template.format(label) for template in templates for label in labels]

    label_features_per_template = False  # one row per label: the mean over the whole ensemble
    cosine_scoring = False  # logits of its own (see logits)

    def encode_labels(self, labels: Sequence[str], templates: Sequence[str] | str | None = None) -> Any:
        """Labels -> one unit embedding per label, ``[1, L, D]``: the mean over the templates of the
        unit prompt embeddings, normalised again. ``templates`` as in the base class."""
        labels = check_labels(labels)
        templates = resolve_templates(templates=templates, default=self.config.templates)
        unit = super().encode_labels(self.prompts(labels, templates), "{}")[0]  # [K * L, D]
        ops = self.ops
        return ops.l2(ops.mean(unit.reshape(len(templates), len(labels), -1), (0,)))[None]

    def logits(self, video_features: Any, label_features: Any) -> Any:
        """``logit_scale * video . label``: the cosine times the video embedding's length, which the
        original keeps (it does not normalise the mean of unit frame embeddings again)."""
        ops = ops_for(video_features)
        video = ops.float32(video_features)
        length = (video * ops.l2(video)).sum(-1)  # [B] or [B, V]
        if length.ndim == 1:
            length = length[:, None]
        return super().logits(video_features, label_features) * length[:, :, None, None]


class FROSTER(OpenVCLIP):
    """FROSTER: Open-VCLIP's model and scoring with FROSTER's prompts.

    FROSTER's class names are rephrased descriptions (``"Abseiling: This video shows ..."``); each
    template takes the name before the first ``:`` and is followed by the whole label (``"a photo of
    Abseiling. Abseiling: This video shows ..."``), and the bare template ``{}`` takes the whole
    label. Plain labels work the same way (``"a photo of running. running"``), as in their code.
    """

    family = "froster"

    def prompts(self, labels: Sequence[str], templates: Sequence[str]) -> list[str]:
        return [label if template == "{}" else f"{template.format(label.split(':')[0])} {label}"
                for template in templates for label in labels]
