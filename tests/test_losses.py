"""The KL loss against a direct re-statement of the original formula (utils/KLLoss.py, train.py)."""

from __future__ import annotations

import math

import pytest
import torch

from actionclip.training.losses import KLLoss, actionclip_loss, kl_loss, multi_positive_targets


def _reference_kl(logits: torch.Tensor, gt: torch.Tensor) -> float:
    """sum_ij q_ij * (log q_ij - log p_ij) / B with q = softmax(10 gt), p = softmax(logits), by loops."""
    b, n = logits.shape
    total = 0.0
    for i in range(b):
        zq = sum(math.exp(10 * float(gt[i, k])) for k in range(n))
        zp = sum(math.exp(float(logits[i, k])) for k in range(n))
        for j in range(n):
            q = math.exp(10 * float(gt[i, j])) / zq
            log_p = float(logits[i, j]) - math.log(zp)
            total += q * (math.log(q) - log_p)
    return total / b


def test_targets_are_the_multi_positive_matrix():
    gt = multi_positive_targets(torch.tensor([3, 1, 3, 0]))
    expected = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float)
    assert torch.equal(gt, expected)


@pytest.mark.filterwarnings("ignore:reduction. .mean. divides")
def test_kl_loss_matches_formula_and_original_reduction():
    torch.manual_seed(0)
    logits = torch.randn(6, 6, dtype=torch.float64) * 5
    labels = torch.tensor([0, 1, 0, 2, 1, 1])
    gt = multi_positive_targets(labels)
    ours = float(kl_loss(logits, gt))
    assert abs(ours - _reference_kl(logits, gt)) < 1e-5
    # The original: nn.KLDivLoss(reduction='mean')(log_softmax, softmax(10 gt)) * batch_size.
    original = torch.nn.KLDivLoss(reduction="mean")(torch.log_softmax(logits.float(), 1),
                                                   torch.softmax(gt * 10, 1)) * 6
    assert abs(ours - float(original)) < 1e-5
    assert abs(float(KLLoss()(logits, gt)) - ours) < 1e-9


def test_actionclip_loss_both_directions():
    torch.manual_seed(1)
    video, text = torch.randn(5, 8), torch.randn(5, 8)
    labels = torch.tensor([0, 1, 1, 2, 0])
    scale = torch.tensor(30.0)
    total, lv, lt = actionclip_loss(video, text, labels, scale)
    vn = video / video.norm(dim=1, keepdim=True)
    tn = text / text.norm(dim=1, keepdim=True)
    gt = multi_positive_targets(labels)
    ref_v = _reference_kl(30 * vn @ tn.t(), gt)
    ref_t = _reference_kl(30 * tn @ vn.t(), gt)
    assert abs(float(lv) - ref_v) < 1e-4 and abs(float(lt) - ref_t) < 1e-4
    assert abs(float(total) - (ref_v + ref_t) / 2) < 1e-4
    assert lv.item() != lt.item()  # the two directions really differ


def test_loss_is_small_when_embeddings_agree_with_labels():
    labels = torch.tensor([0, 1, 2, 0])
    protos = torch.eye(3, 8)
    good = actionclip_loss(protos[labels], protos[labels], labels, torch.tensor(100.0))[0]
    bad = actionclip_loss(protos[labels], protos[torch.tensor([1, 2, 0, 1])], labels, torch.tensor(100.0))[0]
    assert good < 0.01 < bad
