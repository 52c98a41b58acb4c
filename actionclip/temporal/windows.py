"""Scores of windows: label embeddings once, then both scores for batches of windows.

A batch of windows (frame embeddings ``[B, T, D]`` from the cache, or pixels ``[B, T, 3, R, R]``
for models that encode whole windows; see :mod:`actionclip.temporal.frames`) becomes video features
(``model.fuse`` or ``model.encode_video``), then the softmax over the labels given and the
independent per-label score (:mod:`actionclip.temporal.detection`). Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from actionclip.choices import SCORE_KINDS
from actionclip.errors import UsageError

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel

__all__ = ["WindowScorer", "window_features", "check_score_kind"]


def window_features(model: VideoTextModel, units: Any) -> Any:
    """``[B, T, ...]`` window units (cached frame embeddings, or pixels for models that encode whole
    windows) -> video features ``[B, ...]``: the fusion head over the cache, or the video encoder."""
    if model.frame_independent:
        return model.fuse(units)
    return model.encode_video(units)


def check_score_kind(score: str) -> str:
    if score not in SCORE_KINDS:
        raise UsageError(f"score {score!r}: must be one of {', '.join(SCORE_KINDS)}")
    return score


class WindowScorer:
    """Text embeddings once; scores batches of windows with both scores."""

    def __init__(self, model: VideoTextModel, labels: Sequence[str], *, templates: Sequence[str] | None = None,
                 background: Sequence[str] | None = None) -> None:
        from actionclip.temporal.detection import IndependentScorer
        from actionclip.text.labels import check_labels
        from actionclip.workflows.label_cache import encode_labels

        self.model = model
        self.labels = check_labels(labels)
        with model.inference():
            self.label_emb = encode_labels(model, self.labels, templates)  # cached on disk between runs
            self.detector = IndependentScorer(model, self.labels, templates=templates, background=background,
                                              label_emb=self.label_emb)
        self.windows_scored = 0
        self.frames_encoded = 0  # by whole-window encoding (models that are not frame-independent)

    def features(self, units: Any) -> Any:
        """``[B, T, ...]`` window units -> video features ``[B, ...]``."""
        if not self.model.frame_independent:
            self.frames_encoded += units.shape[0] * units.shape[1]
        return window_features(self.model, units)

    def score(self, units: Any) -> tuple[np.ndarray, np.ndarray]:
        """``[B, T, ...]`` window units -> (softmax probs ``[B, L]``, independent ``[B, L]``), numpy."""
        model = self.model
        ops = model.ops
        with model.inference():
            features = self.features(units)
            probs = model.probabilities(features, self.label_emb)
            scores = self.detector.scores(features)
        self.windows_scored += units.shape[0]
        return ops.to_numpy(probs), ops.to_numpy(scores)
