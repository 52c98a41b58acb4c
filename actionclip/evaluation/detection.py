"""Temporal detection mAP: the arithmetic of ActivityNet's ``eval_detection.py``, written once.

ActivityNet scoring (and that of our own annotated sets, and most papers' Python ports for other
datasets) comes down to three steps, restated here from the official ActivityNet code so that every
caller uses one implementation (THUMOS14's MATLAB kit matches differently: see ``thumos14.py``):

1. **temporal IoU** of a predicted segment with the ground-truth segments of its video
   (intersection clipped at 0, union = both lengths minus the intersection);
2. **greedy matching by score**: the predictions of one class, highest score first, each take the
   unmatched ground-truth instance of their video with the highest tIoU at or above the threshold
   (true positive), else count as a false positive. Each instance is used once per threshold; a
   prediction on a video with no ground truth of that class is a false positive;
3. **interpolated AP** (VOC 2011): precision made monotone from the right, summed over the recall
   steps.

Order of equal values, where the official code leaves it to numpy's unstable quicksort: predictions
with equal scores are taken in *reverse* order of appearance (the later one first), and equal tIoUs
likewise prefer the ground-truth instance listed later. That is what the official code does whenever
numpy sorts by insertion (at most 16 values), and it is fixed here for every size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = ["DEFAULT_TIOU", "THUMOS14_TIOU", "Instances", "segment_iou", "interpolated_ap",
           "match_class", "average_precision", "DetectionResult", "detection_map", "parse_tiou"]

#: ActivityNet's thresholds 0.50:0.05:0.95, computed as the official code does (np.linspace), so that a
#: tIoU exactly on a threshold is decided the same way.
DEFAULT_TIOU = np.linspace(0.5, 0.95, 10)
#: THUMOS14's thresholds 0.3:0.1:0.7.
THUMOS14_TIOU = np.linspace(0.3, 0.7, 5)


@dataclass
class Instances:
    """Segments with a video id and a label each (ground truth), or also a score (predictions)."""

    videos: list[str]
    segments: np.ndarray  #: [N, 2] start, end in seconds
    labels: list[str]
    scores: np.ndarray | None = None  #: [N] for predictions, None for ground truth
    source: str = ""

    def __post_init__(self) -> None:
        self.segments = np.asarray(self.segments, dtype=np.float64).reshape(-1, 2)
        if self.scores is not None:
            self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)

    def __len__(self) -> int:
        return len(self.videos)

    def select(self, keep: np.ndarray | Sequence[bool]) -> "Instances":
        keep = np.asarray(keep, dtype=bool)
        idx = np.nonzero(keep)[0]
        return Instances([self.videos[i] for i in idx], self.segments[idx], [self.labels[i] for i in idx],
                         None if self.scores is None else self.scores[idx], self.source)


def segment_iou(segment: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """tIoU of one ``[start, end]`` with each row of ``candidates`` ``[N, 2]`` (the official formula,
    operation for operation, so that values on a threshold compare the same way)."""
    segment = np.asarray(segment, dtype=np.float64)
    candidates = np.asarray(candidates, dtype=np.float64).reshape(-1, 2)
    inter = (np.minimum(segment[1], candidates[:, 1]) - np.maximum(segment[0], candidates[:, 0])).clip(0)
    union = (candidates[:, 1] - candidates[:, 0]) + (segment[1] - segment[0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC 2011 interpolated AP: precision made non-increasing from the right, summed over the points
    where recall changes (recall padded with 0 and 1, precision with 0 and 0)."""
    mprec = np.concatenate([[0.0], np.asarray(precision, dtype=np.float64), [0.0]])
    mrec = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64), [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def _descending(values: np.ndarray) -> np.ndarray:
    # Stable ascending then reversed: highest first, equal values latest-listed first (see module doc).
    return np.argsort(values, kind="stable")[::-1]


def match_class(gt_videos: Sequence[str], gt_segments: np.ndarray, pred_videos: Sequence[str],
                pred_segments: np.ndarray, pred_scores: np.ndarray, thresholds: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy matching of one class's predictions to its ground truth at every threshold.

    Returns ``(order, tp, fp)``: ``order`` [P] the predictions' indices highest score first, and
    ``tp``/``fp`` [T, P] booleans in that order. Matching is independent per video (an instance
    belongs to one video), so each video's predictions are matched in their global score order.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    pred_scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
    gt_segments = np.asarray(gt_segments, dtype=np.float64).reshape(-1, 2)
    pred_segments = np.asarray(pred_segments, dtype=np.float64).reshape(-1, 2)
    n_t, n_p = len(thresholds), len(pred_scores)
    order = _descending(pred_scores)
    tp = np.zeros((n_t, n_p), dtype=bool)
    gt_of_video: dict[str, list[int]] = {}
    for i, v in enumerate(gt_videos):
        gt_of_video.setdefault(v, []).append(i)
    preds_of_video: dict[str, list[int]] = {}
    for rank, p in enumerate(order):
        preds_of_video.setdefault(pred_videos[p], []).append(rank)
    for video, ranks in preds_of_video.items():
        gts = gt_of_video.get(video)
        if gts is None:
            continue  # no instance of this class in that video: all false positives
        g = np.asarray(gts)
        segs = gt_segments[g]
        locked = np.zeros((n_t, len(g)), dtype=bool)
        rows = np.arange(n_t)
        for rank in ranks:
            tiou = segment_iou(pred_segments[order[rank]], segs)
            by_tiou = _descending(tiou)
            # Official loop: walk instances by decreasing tIoU, stop at the first below the threshold,
            # skip locked ones. Sorted (NaN first, as numpy sorts it last), everything after the first
            # value below a threshold is below it too, so "not below and not locked" is the same test.
            ok = ~(tiou[by_tiou][None, :] < thresholds[:, None]) & ~locked[:, by_tiou]
            hit = ok.any(axis=1)
            first = by_tiou[ok.argmax(axis=1)]
            locked[rows[hit], first[hit]] = True
            tp[hit, rank] = True
    return order, tp, ~tp


def average_precision(tp: np.ndarray, n_positives: int) -> np.ndarray:
    """Interpolated AP per threshold from ``tp`` [T, P] (score order) and the number of instances."""
    tp = np.asarray(tp, dtype=np.float64)
    n_t = tp.shape[0]
    if tp.shape[1] == 0 or n_positives == 0:
        return np.zeros(n_t)
    tp_c = np.cumsum(tp, axis=1)
    fp_c = np.cumsum(1.0 - tp, axis=1)
    recall = tp_c / float(n_positives)
    precision = tp_c / (tp_c + fp_c)
    return np.array([interpolated_ap(precision[t], recall[t]) for t in range(n_t)])


@dataclass
class DetectionResult:
    """AP per threshold and class; ``mAP`` per threshold; ``average_mAP`` over thresholds."""

    tiou: np.ndarray  #: [T]
    labels: list[str]  #: the classes of the ground truth, in order of first appearance
    ap: np.ndarray  #: [T, C]
    instances: dict[str, int]  #: ground-truth instances per class
    predictions: dict[str, int]  #: predictions per class (those scored)
    notes: list[str] = field(default_factory=list)  #: one line each: differences from the reference, skipped input
    curves: dict[str, tuple[np.ndarray, np.ndarray]] | None = None  #: label -> (precision [T,P], recall [T,P])
    protocol: str = "activitynet"

    @property
    def mAP(self) -> np.ndarray:
        return self.ap.mean(axis=1) if self.ap.shape[1] else np.zeros(len(self.tiou))

    @property
    def average_mAP(self) -> float:
        return float(self.mAP.mean()) if len(self.tiou) else 0.0

    def per_class(self) -> dict[str, list[float]]:
        return {label: [float(x) for x in self.ap[:, c]] for c, label in enumerate(self.labels)}

    def to_dict(self) -> dict:
        """The ``--json`` document: thresholds, mAP per threshold, average mAP, per-class AP, notes."""
        return {"protocol": self.protocol, "tiou": [round(float(t), 10) for t in self.tiou],
                "mAP": [float(x) for x in self.mAP], "average_mAP": self.average_mAP,
                "per_class": {label: {"ap": aps, "instances": self.instances[label],
                                      "predictions": self.predictions.get(label, 0)}
                              for label, aps in self.per_class().items()},
                "notes": list(self.notes)}


def detection_map(ground_truth: Instances, predictions: Instances, tiou: Sequence[float] | np.ndarray | None = None,
                  *, curves: bool = False, protocol: str = "activitynet") -> DetectionResult:
    """AP of every ground-truth class at every threshold (predictions of other labels are ignored:
    the readers decide what to say about them)."""
    thresholds = DEFAULT_TIOU if tiou is None else np.asarray(tiou, dtype=np.float64).reshape(-1)
    labels = list(dict.fromkeys(ground_truth.labels))
    gt_by_label: dict[str, list[int]] = {}
    for i, label in enumerate(ground_truth.labels):
        gt_by_label.setdefault(label, []).append(i)
    pred_by_label: dict[str, list[int]] = {}
    for i, label in enumerate(predictions.labels):
        pred_by_label.setdefault(label, []).append(i)
    scores = predictions.scores if predictions.scores is not None else np.zeros(len(predictions))
    ap = np.zeros((len(thresholds), len(labels)))
    curve_of: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for c, label in enumerate(labels):
        g = gt_by_label[label]
        p = pred_by_label.get(label, [])
        order, tp, _ = match_class([ground_truth.videos[i] for i in g], ground_truth.segments[g],
                                   [predictions.videos[i] for i in p], predictions.segments[p], scores[p],
                                   thresholds)
        ap[:, c] = average_precision(tp, len(g))
        if curves:
            tp_c = np.cumsum(tp, axis=1, dtype=np.float64)
            denom = np.arange(1, tp.shape[1] + 1, dtype=np.float64)
            curve_of[label] = (tp_c / denom, tp_c / float(len(g)))
    return DetectionResult(thresholds, labels, ap, {l: len(gt_by_label[l]) for l in labels},
                           {l: len(pred_by_label.get(l, [])) for l in labels},
                           curves=curve_of if curves else None, protocol=protocol)


def parse_tiou(text: str) -> np.ndarray:
    """Thresholds from ``"0.5,0.75,0.95"`` or ``"START:STOP:STEP"`` (both ends included)."""
    from actionclip.errors import UsageError

    text = text.strip()
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            values = np.linspace(start, stop, int(round((stop - start) / step)) + 1)
        else:
            values = np.array([float(x) for x in text.split(",") if x.strip()])
    except ValueError:
        raise UsageError(f"tiou: expected 'a,b,c' or 'start:stop:step', got {text!r}") from None
    if not len(values) or np.any((values <= 0) | (values > 1)):
        raise UsageError(f"tiou: thresholds must lie in (0, 1], got {text!r}")
    return values
