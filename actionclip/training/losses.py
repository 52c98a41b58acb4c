"""ActionCLIP's training loss: KL divergence between video<->text similarities and the labels.

In a batch of B clips, each clip i is paired with one prompt of its class. Clips that share a class
are all positives for each other's text, so the target is not the identity but the *multi-positive*
matrix ``gt[i, k] = 1 if label_i == label_k``. The original (``utils/KLLoss.py``, ``train.py``)
turns it into a distribution with ``softmax(10 * gt)`` per row, compares it with
``log_softmax(logits)`` by ``nn.KLDivLoss(reduction='mean') * B`` (= the sum over all entries / B),
and averages the video->text and text->video directions.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["multi_positive_targets", "kl_loss", "similarity_logits", "actionclip_loss", "KLLoss"]

# The original's fixed sharpening of the 0/1 label matrix before its softmax.
TARGET_SCALE = 10.0


def multi_positive_targets(labels: Tensor) -> Tensor:
    """``gt[i, k] = 1.0`` where clips i and k share a label, else 0 (the original's ``gen_label``)."""
    labels = labels.reshape(-1)
    return (labels[:, None] == labels[None, :]).float()


def kl_loss(logits: Tensor, targets: Tensor, target_scale: float = TARGET_SCALE) -> Tensor:
    """KL(softmax(target_scale * targets) || softmax(logits)) per row, summed, divided by rows.

    Computed in float32 whatever the autocast dtype: the log-softmax of logits scaled by ~100 is
    where half precision loses the most.
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    q = F.softmax(targets.float() * target_scale, dim=1)
    return F.kl_div(log_p, q, reduction="sum") / logits.shape[0]


def similarity_logits(video: Tensor, text: Tensor, logit_scale: Tensor) -> tuple[Tensor, Tensor]:
    """``(logits_per_video [B, B], logits_per_text [B, B])`` of scaled cosine similarities."""
    video = video / video.norm(dim=-1, keepdim=True)
    text = text / text.norm(dim=-1, keepdim=True)
    logits = logit_scale * video @ text.t()
    return logits, logits.t()


def actionclip_loss(video: Tensor, text: Tensor, labels: Tensor, logit_scale: Tensor
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """The ActionCLIP objective for one (global) batch.

    Args:
        video: clip embeddings [B, D] (fusion output, not normalised).
        text: embeddings [B, D] of one prompt per clip, for that clip's class.
        labels: class indices [B] (decides which pairs are positives).
        logit_scale: the exp'ed temperature (CLIP's ``logit_scale.exp()``).

    Returns:
        ``(total, loss_video, loss_text)`` with ``total = (loss_video + loss_text) / 2``.
    """
    per_video, per_text = similarity_logits(video, text, logit_scale)
    targets = multi_positive_targets(labels).to(video.device)
    loss_video = kl_loss(per_video, targets)
    loss_text = kl_loss(per_text, targets.t())
    return (loss_video + loss_text) / 2, loss_video, loss_text


class KLLoss(nn.Module):
    """Module form of :func:`kl_loss` (``loss(logits, gt_matrix)``), like the original's class."""

    def __init__(self, target_scale: float = TARGET_SCALE):
        super().__init__()
        self.target_scale = target_scale

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return kl_loss(logits, targets, self.target_scale)
