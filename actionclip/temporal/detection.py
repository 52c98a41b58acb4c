"""Independent per-label detection scores: "is this action happening?" for each label on its own.

The ActionCLIP score (``model.probabilities``) is a softmax *over the labels given*: it always sums to 1,
so with one label it is always 1, and adding or removing a label changes every other label's score. That
answers "which of these?", not "is anyone *falling*?".

The **independent score** of label ``l`` compares the label with a fixed set of *background* prompts
("something", "a person", ...) instead of with the other labels. For each prompt template ``k`` (and each
view ``v``)::

    c   = cos(video, text(template_k, label_l))
    b_m = cos(video, text(template_k, background_m))           m = 1..M
    p   = sigmoid(s * c - logmeanexp_m(s * b_m))                s = the model's logit scale (~100)

and the score is the mean of ``p`` over templates and views. With one background prompt this is the
two-way softmax "label vs background" at the temperature CLIP was trained with; with several, the
background is their soft mean, so adding background prompts does not by itself lower the scores.

What it means: the probability that the label is a better caption of the clip than a generic
description of "some scene". It lies in (0, 1), does not depend on the other labels (scoring
``["falling"]`` alone gives the same number as scoring ``["falling", "walking", ...]``), and 0.5 means
"as close to the label as to the background".

Choosing a threshold: 0.5 is the neutral point and the default. Because CLIP cosines are compressed
(all in a narrow band around 0.2-0.3), the useful threshold depends on the model and the footage:
run the timeline on a stretch of footage where the action does *not* happen and take a high quantile of
the scores (``choose_threshold(negatives, target_fpr=0.01)``); if you also have positive footage,
``choose_threshold`` picks the threshold that best separates the two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from actionclip.model import scoring

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel

#: Generic descriptions that any scene roughly matches; each goes through the same templates as labels.
BACKGROUND_PROMPTS: tuple[str, ...] = (
    "something",
    "nothing in particular",
    "a person",
    "people",
    "a scene",
    "an everyday activity",
)


def independent_scores(
    video_emb: Any,
    label_emb: Any,
    background_emb: Any,
    logit_scale: Any,
) -> Any:
    """Score each label against the background prompt set, independently of the other labels.

    Args:
        video_emb: ``[B, D]`` or ``[B, V, D]`` (V views) video embeddings; need not be normalised.
        label_emb: ``[K, L, D]`` L2-normalised label embeddings (K templates), from ``encode_labels``.
        background_emb: ``[K, M, D]`` L2-normalised background embeddings with the same templates.
        logit_scale: the model's (exp'ed) logit scale.

    Returns:
        ``[B, L]`` float32 scores in (0, 1) (torch or numpy, as the inputs).
    """
    if label_emb.shape[0] != background_emb.shape[0]:
        raise ValueError("label and background embeddings must use the same templates")
    scale = float(logit_scale)
    return scoring.independent_scores(scoring.cosine_logits(video_emb, label_emb, scale),
                                      scoring.cosine_logits(video_emb, background_emb, scale))


class IndependentScorer:
    """Label and background text embeddings computed once; scores any number of videos' features.

    ``IndependentScorer(model, labels).scores(features)`` -> ``[B, L]``; see the module docstring.
    The logits come from ``model.logits``, so a model whose text depends on the video (X-CLIP)
    scores its own way.
    """

    def __init__(
        self,
        model: VideoTextModel,
        labels: Sequence[str],
        *,
        templates: Sequence[str] | None = None,
        background: Sequence[str] | None = None,
        label_emb: Any = None,
    ) -> None:
        from actionclip.errors import UsageError
        from actionclip.text.labels import label_key

        self.labels = list(labels)
        self.background = list(BACKGROUND_PROMPTS if background is None else background)
        if not self.background:
            raise UsageError("background prompts: at least one is needed for independent scores")
        # Compared as the tokenizer sees them: "A  Person" and "a person" are one prompt to the model.
        background_keys = {label_key(b) for b in self.background}
        clash = sorted(l for l in self.labels if label_key(l) in background_keys)
        if clash:
            raise UsageError(f"label {clash[0]!r}: also a background prompt, its score would be 0.5")
        self.model = model
        from actionclip.workflows.label_cache import encode_labels

        self.label_emb = label_emb if label_emb is not None else encode_labels(model, self.labels, templates)
        self.background_emb = encode_labels(model, self.background, templates)

    def scores(self, features: Any) -> Any:
        """Video features ``[B, ...]`` / ``[B, V, ...]`` -> ``[B, L]`` independent scores."""
        with self.model.inference():
            return scoring.independent_scores(self.model.logits(features, self.label_emb),
                                              self.model.logits(features, self.background_emb))


def choose_threshold(
    negatives: Sequence[float],
    positives: Sequence[float] | None = None,
    *,
    target_fpr: float = 0.01,
) -> float:
    """Pick a detection threshold from scores measured on footage without (and with) the action.

    With only ``negatives`` (scores of windows where the action is absent), returns the score that at
    most ``target_fpr`` of them exceed: the false-alarm rate you accept per window. With ``positives``
    too, returns the threshold (a midpoint between observed scores) that maximises balanced accuracy,
    the mean of the true-positive and true-negative rates; ``target_fpr`` is then not used.
    """
    import numpy as np

    neg = np.sort(np.asarray(negatives, dtype=np.float64).ravel())
    if neg.size == 0:
        raise ValueError("choose_threshold needs at least one negative score")
    if not 0.0 <= target_fpr < 1.0:
        raise ValueError("target_fpr must be in [0, 1)")
    # Smallest threshold t with mean(neg > t) <= target_fpr.
    allowed = int(math.floor(target_fpr * neg.size))
    fpr_threshold = float(neg[neg.size - 1 - allowed]) if allowed < neg.size else float(neg[0])
    if positives is None:
        return fpr_threshold
    pos = np.asarray(positives, dtype=np.float64).ravel()
    if pos.size == 0:
        return fpr_threshold
    candidates = np.unique(np.concatenate([neg, pos]))
    mids = np.concatenate([[candidates[0] - 1e-6], (candidates[1:] + candidates[:-1]) / 2])
    tpr = (pos[None, :] >= mids[:, None]).mean(axis=1)
    tnr = (neg[None, :] < mids[:, None]).mean(axis=1)
    return float(mids[int(np.argmax(tpr + tnr))])
