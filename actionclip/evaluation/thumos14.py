"""THUMOS14's detection protocol: the MATLAB kit's files and arithmetic, restated in numpy.

The THUMOS14 evaluation kit (``TH14evalDet.m`` and ``TH14eventdetpr.m`` of THUMOS14_evalkit_20150930)
is MATLAB, and it does not score the way ActivityNet's code does. Per class and per video:

- detections are sorted by decreasing confidence (stably: equal confidences keep file order);
- matching runs over the **ground-truth instances** in file order: each takes, among the detections
  not yet taken, the one with the highest tIoU (the first, i.e. most confident, on equal tIoU), if
  that tIoU is **strictly** above the threshold;
- a detection left unmatched that overlaps an ``Ambiguous`` segment at all is dropped (neither
  true nor false positive); a detection on a video without instances of the class is a false positive;
- all videos' detections (videos in sorted order) are then sorted by confidence, stably, and AP is
  the **non-interpolated** sum of the precision at each true positive divided by the number of
  instances. A class without detections scores 0; a detection whose class id is not in
  ``detclasslist.txt`` is ignored (the kit warns).

tIoU is the kit's ``intervaloverlapvalseconds``: intersection over the span from the earliest start
to the latest end (the union, for segments that overlap), endpoints put in order first.

Files: ``detclasslist.txt`` (``id name`` per line), ``<Class>_<subset>.txt`` for every class and
``Ambiguous_<subset>.txt`` (``video t_start t_end``), detections ``video t_start t_end class_id score``.
The field reports mAP at tIoU 0.3, 0.4, 0.5, 0.6, 0.7 (and often their mean).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from actionclip.errors import UsageError
from actionclip.evaluation.detection import THUMOS14_TIOU, DetectionResult, Instances

__all__ = ["read_class_list", "read_ground_truth", "read_detections", "kit_overlap", "evaluate_thumos14",
           "AMBIGUOUS"]

AMBIGUOUS = "Ambiguous"


def _lines(path: Path, what: str) -> list[tuple[int, list[str]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read {what} ({getattr(exc, 'strerror', None) or exc})") from None
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def read_class_list(path: str | os.PathLike) -> dict[int, str]:
    """``detclasslist.txt``: class id -> name, in file order."""
    path = Path(path)
    classes: dict[int, str] = {}
    for n, fields in _lines(path, "class list"):
        if len(fields) != 2:
            raise UsageError(f"{path}: line {n}: expected 'id name', got {' '.join(fields)!r}")
        try:
            cid = int(fields[0])
        except ValueError:
            raise UsageError(f"{path}: line {n}: class id {fields[0]!r} is not an integer") from None
        if cid in classes or fields[1] in classes.values():
            raise UsageError(f"{path}: line {n}: class {fields[0]} {fields[1]} listed twice")
        classes[cid] = fields[1]
    if not classes:
        raise UsageError(f"{path}: no class listed")
    return classes


def _segments_file(path: Path, label: str) -> list[tuple[str, float, float, str]]:
    rows = []
    for n, fields in _lines(path, "ground truth"):
        if len(fields) != 3:
            raise UsageError(f"{path}: line {n}: expected 'video t_start t_end', got {' '.join(fields)!r}")
        try:
            rows.append((fields[0], float(fields[1]), float(fields[2]), label))
        except ValueError:
            raise UsageError(f"{path}: line {n}: times must be numbers, got {' '.join(fields[1:])!r}") from None
    return rows


def read_ground_truth(folder: str | os.PathLike, classes: dict[int, str], subset: str = "test") -> Instances:
    """Every ``<Class>_<subset>.txt`` named by the class list, then ``Ambiguous_<subset>.txt`` (as label
    ``Ambiguous``); a missing file is an error, as in the kit."""
    folder = Path(folder)
    rows = []
    for name in list(classes.values()) + [AMBIGUOUS]:
        rows += _segments_file(folder / f"{name}_{subset}.txt", name)
    return Instances([r[0] for r in rows], np.array([r[1:3] for r in rows]).reshape(-1, 2), [r[3] for r in rows],
                     source=str(folder))


def read_detections(path: str | os.PathLike, classes: dict[int, str]) -> tuple[Instances, dict[int, int]]:
    """Detections with a known class id (labels as class names); also the count of each unknown id."""
    path = Path(path)
    videos, segs, labels, scores, unknown = [], [], [], [], {}
    for n, fields in _lines(path, "detections"):
        if len(fields) != 5:
            raise UsageError(f"{path}: line {n}: expected 'video t_start t_end class_id score', "
                             f"got {' '.join(fields)!r}")
        try:
            start, end, cid, score = float(fields[1]), float(fields[2]), int(fields[3]), float(fields[4])
        except ValueError:
            raise UsageError(f"{path}: line {n}: expected numbers after the video name, "
                             f"got {' '.join(fields[1:])!r}") from None
        if cid not in classes:
            unknown[cid] = unknown.get(cid, 0) + 1
            continue
        video = fields[0][:-5] if fields[0].endswith(".mpeg") else fields[0]  # the kit strips '.mpeg'
        videos.append(video)
        segs.append((start, end))
        labels.append(classes[cid])
        scores.append(score)
    return Instances(videos, np.array(segs).reshape(-1, 2), labels, np.array(scores), str(path)), unknown


def kit_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The kit's tIoU of every row of ``a`` [N, 2] with every row of ``b`` [M, 2] -> [N, M]: intersection
    over the span from the earliest start to the latest end, 0 where they do not overlap."""
    a = np.sort(np.asarray(a, dtype=np.float64).reshape(-1, 2), axis=1)
    b = np.sort(np.asarray(b, dtype=np.float64).reshape(-1, 2), axis=1)
    inter = np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0])
    span = np.maximum(a[:, None, 1], b[None, :, 1]) - np.minimum(a[:, None, 0], b[None, :, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / span, 0.0)


def _by_video(videos: Sequence[str]) -> dict[str, np.ndarray]:
    groups: dict[str, list[int]] = {}
    for i, v in enumerate(videos):
        groups.setdefault(v, []).append(i)
    return {v: np.asarray(ix) for v, ix in groups.items()}


def _class_flags(gt: Instances, amb: Instances, det: Instances, thr: float,
                 groups: tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Confidences and flags (True: TP, False: FP) of one class's kept detections, in the kit's order.
    ``groups``: the indices of ``gt``, ``amb`` and ``det`` per video, when the caller has them."""
    gt_of, amb_of, det_of = groups or (_by_video(gt.videos), _by_video(amb.videos), _by_video(det.videos))
    confs, flags = [], []
    for video in sorted(set(gt_of) | set(det_of)):
        d = det_of.get(video)
        if d is None:
            continue
        d = d[np.argsort(-det.scores[d], kind="stable")]
        free = np.ones(len(d), dtype=bool)
        g = gt_of.get(video)
        if g is not None:
            ov = kit_overlap(gt.segments[g], det.segments[d])
            for k in range(len(g)):
                idx = np.nonzero(free)[0]
                if not len(idx):
                    break
                best = idx[int(np.argmax(ov[k, idx]))]  # argmax: the first of equal values, as MATLAB's max
                if ov[k, best] > thr:
                    free[best] = False
        a = amb_of.get(video)
        near_amb = (kit_overlap(amb.segments[a], det.segments[d]).sum(axis=0) > 0) if a is not None \
            else np.zeros(len(d), bool)
        keep = ~free | ~near_amb
        confs.append(det.scores[d][keep])
        flags.append(~free[keep])
    if not confs:
        return np.zeros(0), np.zeros(0, dtype=bool)
    conf, flag = np.concatenate(confs), np.concatenate(flags)
    order = np.argsort(-conf, kind="stable")
    return conf[order], flag[order]


def evaluate_thumos14(ground_truth: str | os.PathLike, detections: str | os.PathLike, *,
                      tiou: Sequence[float] | np.ndarray | None = None, classes: str | os.PathLike | None = None,
                      subset: str = "test", videos: Iterable[str] | None = None,
                      curves: bool = False) -> DetectionResult:
    """THUMOS14 detection mAP as the kit computes it (see the module's docstring).

    Args:
        ground_truth: the annotation folder (``<Class>_<subset>.txt``, ``Ambiguous_<subset>.txt``).
        detections: the text file ``video t_start t_end class_id score``.
        tiou: thresholds (default 0.3, 0.4, 0.5, 0.6, 0.7).
        classes: ``detclasslist.txt`` (default: the one in ``ground_truth``).
        subset: the file-name suffix of the annotation files, ``test`` or ``val``.
        videos: score only these videos' instances (our extension, for a run over part of a set).
        curves: also keep each class's precision and recall (for a plot).
    """
    folder = Path(ground_truth)
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a THUMOS14 annotation folder")
    class_of = read_class_list(classes if classes is not None else folder / "detclasslist.txt")
    thresholds = THUMOS14_TIOU if tiou is None else np.asarray(tiou, dtype=np.float64).reshape(-1)
    everything = read_ground_truth(folder, class_of, subset)
    if videos is not None:
        only = set(videos)
        everything = everything.select([v in only for v in everything.videos])
    dets, unknown = read_detections(detections, class_of)
    amb = everything.select([l == AMBIGUOUS for l in everything.labels])
    amb_groups = _by_video(amb.videos)
    labels = list(class_of.values())
    ap = np.zeros((len(thresholds), len(labels)))
    instances, predictions, curve_of = {}, {}, {}
    notes = []
    if unknown:
        notes.append(f"{dets.source}: {sum(unknown.values())} detection(s) with class id(s) not in the class list "
                     f"({', '.join(map(str, sorted(unknown)))}): ignored, as the kit does")
    for c, label in enumerate(labels):
        gt = everything.select([l == label for l in everything.labels])
        det = dets.select([l == label for l in dets.labels])
        instances[label], predictions[label] = len(gt), len(det)
        if not len(gt):
            # The kit stops here (assert npos > 0); the class is left at AP 0 and said so.
            notes.append(f"{folder}: class {label!r} has no instance in {label}_{subset}.txt: the kit stops "
                         "here (assert npos > 0); AP 0")
            continue
        precs, recs = [], []
        groups = (_by_video(gt.videos), amb_groups, _by_video(det.videos))
        for t, thr in enumerate(thresholds):
            _, flag = _class_flags(gt, amb, det, float(thr), groups)
            tp = np.cumsum(flag, dtype=np.float64)
            fp = np.cumsum(~flag, dtype=np.float64)
            prec = tp / np.maximum(tp + fp, 1.0)
            ap[t, c] = float(prec[flag].sum() / len(gt)) if len(flag) else 0.0
            precs.append(prec)
            recs.append(tp / len(gt))
        if curves:
            width = max(len(p) for p in precs)
            pad = lambda xs: np.array([np.pad(x, (0, width - len(x)), mode="edge") if len(x) else np.zeros(width)
                                       for x in xs])
            curve_of[label] = (pad(precs), pad(recs))
    empty = [l for l in labels if predictions[l] == 0 and instances[l]]
    if empty:
        notes.append(f"{dets.source}: {len(empty)} class(es) without detections "
                     f"({', '.join(map(repr, empty[:5]))}{', ...' if len(empty) > 5 else ''}): AP 0, as the kit gives")
    return DetectionResult(thresholds, labels, ap, instances, predictions, notes,
                           curve_of if curves else None, protocol="thumos14")
