"""ActivityNet's detection files and ``evaluate_detection``: the official protocol, runnable today.

The official ``Evaluation/eval_detection.py`` (activitynet/ActivityNet) is Python 2 only, asks a dead
server for "blocked videos" unless ``check_status=False``, and stops with a ``KeyError`` on a
predicted label the ground truth does not know. This module reads the same files, applies the same
rules (subset filter, blocked videos removed from both sides, predictions on videos without ground
truth counted as false positives, a class without predictions scored 0) and scores them with
:mod:`actionclip.evaluation.detection`. Where the official code would stop, it says so in one line
in ``DetectionResult.notes`` and reports what the official code computes for the rest.

Ground truth: ``{"version", "taxonomy", "database": {video: {"subset", "duration", "annotations":
[{"segment": [s, e], "label"}]}}}``. Predictions: ``{"version", "results": {video: [{"label",
"score", "segment": [s, e]}]}, "external_data"}``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from actionclip.errors import UsageError
from actionclip.evaluation.detection import DEFAULT_TIOU, DetectionResult, Instances, detection_map

__all__ = ["load_json", "read_ground_truth", "read_predictions", "evaluate_detection", "GT_FIELDS", "PREDICTION_FIELDS"]

#: Top-level keys the official reader insists on (it refuses a file without any of them).
GT_FIELDS = ("database", "taxonomy", "version")
PREDICTION_FIELDS = ("results", "version", "external_data")


def load_json(path: str | os.PathLike, what: str) -> Any:
    """Parse a JSON file, or one :class:`UsageError` line naming the file and the cause."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such {what} file") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read {what} ({getattr(exc, 'strerror', None) or exc})") from None


def _segment(value: Any, where: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise UsageError(f"{where}: 'segment' must be [start, end], got {value!r}")
    try:
        start, end = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        raise UsageError(f"{where}: 'segment' must hold two numbers, got {value!r}") from None
    if not (math.isfinite(start) and math.isfinite(end)):
        raise UsageError(f"{where}: 'segment' must hold finite numbers, got {value!r}")
    return start, end


def _document(source: Any, what: str, key: str) -> tuple[dict, str]:
    if isinstance(source, Mapping):
        doc, name = source, f"<{what}>"
    else:
        doc, name = load_json(source, what), str(source)
    if not isinstance(doc, Mapping) or not isinstance(doc.get(key), Mapping):
        raise UsageError(f"{name}: not an ActivityNet {what} file (no {key!r} object at the top)")
    return doc, name


def read_ground_truth(source: str | os.PathLike | Mapping, subset: str | None = "validation",
                      blocked: Iterable[str] = (), videos: Iterable[str] | None = None) -> tuple[Instances, dict]:
    """Ground-truth instances of ``subset`` (``None``: every video), without ``blocked`` videos, and
    only of ``videos`` when given.

    Returns the instances (labels in order of first appearance) and facts for notes: ``videos`` (ids
    in the subset), ``other_subsets`` (ids of videos in other subsets), ``missing_fields``.
    """
    doc, name = _document(source, "ground truth", "database")
    blocked = set(blocked)
    only = None if videos is None else set(videos)
    videos, segments, labels = [], [], []
    in_subset, other = set(), set()
    for video, entry in doc["database"].items():
        if only is not None and video not in only:
            continue
        where = f"{name}: video {video!r}"
        if not isinstance(entry, Mapping):
            raise UsageError(f"{where}: expected an object with 'subset' and 'annotations'")
        if subset is not None:
            if "subset" not in entry:
                raise UsageError(f"{where}: no 'subset' key (choose subset=None to use every video)")
            if entry["subset"] != subset:
                other.add(video)
                continue
        if video in blocked:
            continue
        in_subset.add(video)
        anns = entry.get("annotations")
        if not isinstance(anns, list):
            raise UsageError(f"{where}: no 'annotations' list")
        for k, ann in enumerate(anns):
            if not isinstance(ann, Mapping) or "label" not in ann or "segment" not in ann:
                raise UsageError(f"{where}, annotation {k}: needs 'segment' and 'label'")
            videos.append(video)
            segments.append(_segment(ann["segment"], f"{where}, annotation {k}"))
            labels.append(str(ann["label"]))
    if not videos:
        subsets = sorted({str(e.get("subset")) for e in doc["database"].values() if isinstance(e, Mapping)})
        raise UsageError(f"{name}: no annotated video in subset {subset!r} (subsets present: {', '.join(subsets)})")
    facts = {"videos": in_subset, "other_subsets": other - in_subset,
             "missing_fields": [f for f in GT_FIELDS if f not in doc]}
    return Instances(videos, np.array(segments), labels, source=name), facts


def read_predictions(source: str | os.PathLike | Mapping, blocked: Iterable[str] = ()) -> tuple[Instances, dict]:
    """Every prediction except those on ``blocked`` videos, in file order."""
    doc, name = _document(source, "predictions", "results")
    blocked = set(blocked)
    videos, segments, labels, scores = [], [], [], []
    for video, preds in doc["results"].items():
        if video in blocked:
            continue
        where = f"{name}: video {video!r}"
        if not isinstance(preds, list):
            raise UsageError(f"{where}: expected a list of predictions")
        for k, pred in enumerate(preds):
            if not isinstance(pred, Mapping) or not all(key in pred for key in ("label", "score", "segment")):
                raise UsageError(f"{where}, prediction {k}: needs 'label', 'score' and 'segment'")
            score = pred["score"]
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
                raise UsageError(f"{where}, prediction {k}: 'score' must be a finite number, got {score!r}")
            videos.append(video)
            segments.append(_segment(pred["segment"], f"{where}, prediction {k}"))
            labels.append(str(pred["label"]))
            scores.append(float(score))
    facts = {"missing_fields": [f for f in PREDICTION_FIELDS if f not in doc]}
    return Instances(videos, np.array(segments).reshape(-1, 2), labels, np.array(scores), name), facts


def _read_blocked(blocked: str | os.PathLike | Iterable[str] | None) -> set[str]:
    if blocked is None:
        return set()
    if isinstance(blocked, (str, os.PathLike)):
        path = Path(blocked)
        if path.suffix.lower() == ".json":
            data = load_json(path, "blocked videos")
            if not isinstance(data, list):
                raise UsageError(f"{path}: expected a JSON list of video ids")
            return {str(v) for v in data}
        try:
            return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
        except OSError as exc:
            raise UsageError(f"{path}: cannot read blocked videos ({exc.strerror or exc})") from None
    return {str(v) for v in blocked}


def evaluate_detection(ground_truth: str | os.PathLike | Mapping, predictions: str | os.PathLike | Mapping, *,
                       subset: str | None = "validation", tiou: Sequence[float] | np.ndarray | None = None,
                       blocked: str | os.PathLike | Iterable[str] | None = None,
                       videos: Iterable[str] | None = None, curves: bool = False) -> DetectionResult:
    """ActivityNet detection mAP of ``predictions`` against ``ground_truth`` (paths or parsed JSON).

    Args:
        subset: the ground truth's subset to score (``"validation"`` as the official default);
            ``None`` scores every video of the file.
        tiou: thresholds (default 0.50:0.05:0.95, as ``np.linspace(0.5, 0.95, 10)``).
        blocked: video ids removed from both files, as the official code does with the list its
            server returned (a list, or a file: JSON list or one id per line). Default: none, which
            is the official code run with ``check_status=False``.
        videos: score only these ground-truth videos (our extension, for a run over part of a set;
            predictions on other videos still count as false positives).
        curves: also keep each class's precision and recall (for a plot).

    Returns:
        :class:`DetectionResult`; ``notes`` says where the official code would have stopped or
        differs, and what was counted how.

    Raises:
        UsageError: unreadable or malformed files, one line naming the file and the cause.
    """
    blocked_ids = _read_blocked(blocked)
    gt, gt_facts = read_ground_truth(ground_truth, subset, blocked_ids, videos)
    preds, pred_facts = read_predictions(predictions, blocked_ids)
    notes: list[str] = []
    for what, facts, src in (("ground truth", gt_facts, gt.source), ("predictions", pred_facts, preds.source)):
        if facts["missing_fields"]:
            notes.append(f"{src}: no {', '.join(map(repr, facts['missing_fields']))} key: the official code "
                         f"refuses this {what} file; scored anyway")
    known = set(gt.labels)
    unknown = sorted({l for l in preds.labels if l not in known})
    if unknown:
        n = sum(1 for l in preds.labels if l not in known)
        shown = ", ".join(repr(l) for l in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        notes.append(f"{preds.source}: {n} prediction(s) with label(s) not in the ground truth's subset "
                     f"({shown}): the official code stops here (KeyError); they are left out")
        preds = preds.select([l in known for l in preds.labels])
    if len(preds) == 0:
        notes.append(f"{preds.source}: no prediction to score: every AP is 0")
    absent = {v for v in preds.videos if v not in gt_facts["videos"]}
    if absent:
        n = sum(1 for v in preds.videos if v in absent)
        other = len(absent & gt_facts["other_subsets"])
        notes.append(f"{preds.source}: {n} prediction(s) on {len(absent)} video(s) without ground truth in this "
                     f"subset{f' ({other} of them in another subset)' if other else ''}: counted as false "
                     "positives, as the official code does")
    result = detection_map(gt, preds, DEFAULT_TIOU if tiou is None else tiou, curves=curves)
    empty = [l for l in result.labels if result.predictions.get(l, 0) == 0]
    if empty and len(preds):
        shown = ", ".join(repr(l) for l in empty[:5]) + (", ..." if len(empty) > 5 else "")
        # The official code before its commit ebc8aeb (2017) stopped here; since then it warns and scores 0.
        notes.append(f"{preds.source}: {len(empty)} class(es) without predictions ({shown}): AP 0, as the "
                     "official code gives")
    result.notes = notes
    return result
