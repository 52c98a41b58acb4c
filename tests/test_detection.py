"""Independent per-label scores (actionclip.temporal.detection): maths, independence, threshold choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actionclip.errors import UsageError
from actionclip.model.base import VideoTextModel
from actionclip.model.scoring import TORCH
from actionclip.temporal.detection import BACKGROUND_PROMPTS, IndependentScorer, choose_threshold, independent_scores


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


@pytest.fixture
def embeddings():
    g = torch.Generator().manual_seed(0)
    video = torch.randn(5, 16, generator=g)
    labels = _unit(torch.randn(3, 4, 16, generator=g))  # K=3 templates, L=4 labels
    background = _unit(torch.randn(3, 2, 16, generator=g))
    return video, labels, background


def test_score_of_a_label_does_not_depend_on_the_other_labels(embeddings):
    video, labels, background = embeddings
    all_scores = independent_scores(video, labels, background, 100.0)
    for li in range(labels.shape[1]):
        alone = independent_scores(video, labels[:, li : li + 1], background, 100.0)
        torch.testing.assert_close(alone[:, 0], all_scores[:, li])
    # The softmax over labels, by contrast, changes when a label is dropped.
    cos = torch.einsum("bd,kld->bkl", _unit(video), labels)
    softmax_all = (100 * cos).softmax(-1).mean(1)[:, 0]
    softmax_two = (100 * cos[..., :2]).softmax(-1).mean(1)[:, 0]
    assert not torch.allclose(softmax_all, softmax_two)


def test_one_background_prompt_is_a_two_way_softmax(embeddings):
    video, labels, background = embeddings
    bg = background[:, :1]
    got = independent_scores(video, labels, bg, 30.0)
    v = _unit(video)
    c = torch.einsum("bd,kld->bkl", v, labels)
    b = torch.einsum("bd,kd->bk", v, bg[:, 0])[..., None]
    two_way = torch.stack([30 * c, (30 * b).expand_as(c)], -1).softmax(-1)[..., 0]
    torch.testing.assert_close(got, two_way.mean(1))


def test_repeating_background_prompts_changes_nothing(embeddings):
    video, labels, background = embeddings
    once = independent_scores(video, labels, background, 50.0)
    thrice = independent_scores(video, labels, background.repeat(1, 3, 1), 50.0)
    torch.testing.assert_close(once, thrice)


def test_views_are_averaged_and_scores_are_probabilities(embeddings):
    video, labels, background = embeddings
    views = torch.stack([video, -video], 1)  # [B, 2, D]
    got = independent_scores(views, labels, background, 100.0)
    expected = (independent_scores(video, labels, background, 100.0)
                + independent_scores(-video, labels, background, 100.0)) / 2
    torch.testing.assert_close(got, expected)
    assert got.shape == (5, 4) and bool(((got > 0) & (got < 1)).all())


def test_a_video_equal_to_a_label_scores_high_and_to_the_background_low():
    labels = torch.eye(4)[None, :2]  # two labels on axes 0, 1
    background = torch.eye(4)[None, 2:3]  # background on axis 2
    video = torch.eye(4)[[0, 2]]  # first clip shows label 0, second only background
    s = independent_scores(video, labels, background, 100.0)
    assert s[0, 0] > 0.99 and s[0, 1] == pytest.approx(0.5, abs=1e-6)  # label 1 ties with background
    assert s[1, 0] < 0.01 and s[1, 1] < 0.01


class _FakeModel(VideoTextModel):
    """encode_labels maps each word to its own axis (enough to test the scorer's bookkeeping)."""

    logit_scale = torch.tensor(100.0)
    ops = TORCH

    def __init__(self):
        self.words: dict[str, int] = {}
        self.calls: list[list[str]] = []

    def encode_labels(self, labels, templates=None):
        self.calls.append(list(labels))
        idx = [self.words.setdefault(l, len(self.words)) for l in labels]
        return torch.eye(32)[idx][None]


def test_scorer_encodes_text_once_and_rejects_a_label_that_is_a_background_prompt():
    model = _FakeModel()
    scorer = IndependentScorer(model, ["falling", "jumping"], background=["something"])
    assert model.calls == [["falling", "jumping"], ["something"]]
    video = torch.eye(32)[[model.words["falling"]]]
    s = scorer.scores(video)
    assert s[0, 0] > 0.99 and s[0, 1] == pytest.approx(0.5)
    scorer.scores(video)
    assert len(model.calls) == 2  # no text re-encoding per call
    with pytest.raises(UsageError, match="'something'"):
        IndependentScorer(model, ["something"], background=["something"])
    with pytest.raises(UsageError, match="'A  Person'"):  # the same prompt once lower-cased and folded
        IndependentScorer(model, ["walking", "A  Person"])
    with pytest.raises(UsageError):
        IndependentScorer(model, ["a"], background=[])
    assert len(BACKGROUND_PROMPTS) >= 3


def test_choose_threshold_from_negatives_bounds_false_alarms():
    rng = np.random.default_rng(0)
    neg = rng.uniform(0.1, 0.4, size=1000)
    for fpr in (0.0, 0.01, 0.1):
        t = choose_threshold(neg, target_fpr=fpr)
        assert (neg > t).mean() <= fpr
        # and it is the smallest such threshold among the observed scores
        assert (neg > np.sort(neg)[np.searchsorted(np.sort(neg), t) - 1]).mean() > fpr
    assert choose_threshold(neg, target_fpr=0.0) == neg.max()


def test_choose_threshold_separates_negatives_and_positives():
    neg = np.array([0.1, 0.2, 0.25, 0.3])
    pos = np.array([0.6, 0.7, 0.35, 0.9])
    t = choose_threshold(neg, pos)
    assert 0.3 < t < 0.35
    with pytest.raises(ValueError):
        choose_threshold([])
