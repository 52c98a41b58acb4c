"""Detection mAP (ActivityNet protocol): hand-computed cases, a slow restatement, the official code.

Three kinds of proof:
- small cases whose AP is worked out by hand in the comments;
- ``_reference_ap``: a plain loop written from the published definition (VOC-style greedy matching,
  interpolated AP), against which the vectorised code is checked on many random cases;
- the official ``Evaluation/eval_detection.py`` of activitynet/ActivityNet itself, run under Python
  2.7 when ``ACTIONCLIP_ACTIVITYNET_EVAL`` (its ``Evaluation`` folder) and ``ACTIONCLIP_PY27`` (a
  Python 2.7 with numpy 1.16, pandas 0.24, joblib 0.14) are set: equal within 1e-6. It is never
  committed here; docs/evaluation.md says how to fetch it and run this test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from actionclip.errors import UsageError
from actionclip.evaluation.activitynet import evaluate_detection
from actionclip.evaluation.detection import (DEFAULT_TIOU, Instances, detection_map, interpolated_ap, parse_tiou,
                                             segment_iou)


# ----------------------------------------------------------------------------------------------
# The restatement: obvious loops, no numpy tricks.


def _reference_ap(gt, preds, thr):
    """AP of one class. gt: [(video, s, e)], preds: [(video, s, e, score)] in listed order.

    Predictions highest score first (equal scores: the later-listed first); each takes the free
    instance of its video with the highest tIoU (equal tIoU: the later-listed), if that tIoU >= thr.
    """
    if not preds:
        return 0.0
    order = sorted(range(len(preds)), key=lambda i: (preds[i][3], i), reverse=True)
    used = [False] * len(gt)
    hits = []
    for i in order:
        v, s, e, _ = preds[i]
        best, best_iou = None, None
        for j in range(len(gt)):
            gv, gs, ge = gt[j]
            if gv != v or used[j]:
                continue
            inter = max(0.0, min(e, ge) - max(s, gs))
            iou = inter / ((ge - gs) + (e - s) - inter)
            if iou >= thr and (best is None or iou >= best_iou):
                best, best_iou = j, iou
        if best is not None:
            used[best] = True
        hits.append(best is not None)
    # precision/recall after each prediction, then the area under the precision envelope
    points, tp = [], 0
    for k, hit in enumerate(hits, 1):
        tp += hit
        points.append((tp / len(gt), tp / k))
    ap, prev_recall = 0.0, 0.0
    for k, (recall, _) in enumerate(points):
        if recall > prev_recall:
            ap += (recall - prev_recall) * max(p for _, p in points[k:])
            prev_recall = recall
    return ap


def _random_case(rng, n_videos=6, n_classes=4, max_gt=4, max_pred=10, grid=True, ties=False, extra_videos=2):
    gt, preds = [], []
    for v in range(n_videos):
        video = f"vid{v}"
        for c in range(n_classes):
            if rng.random() < 0.3:
                continue
            for _ in range(rng.integers(0, max_gt + 1)):
                s = float(rng.integers(0, 40)) / (2 if grid else rng.uniform(1, 3))
                gt.append((video, s, s + float(rng.integers(1, 12)) / 2, f"class{c}"))
    for v in range(n_videos + extra_videos):  # videos without any ground truth
        video = f"vid{v}"
        for _ in range(rng.integers(0, max_pred + 1)):
            c = int(rng.integers(0, n_classes))
            anchor = [g for g in gt if g[0] == video and g[3] == f"class{c}"]
            if anchor and rng.random() < 0.6:  # near an instance: tIoUs around the thresholds
                _, s, e, _ = anchor[int(rng.integers(0, len(anchor)))]
                s, e = s + float(rng.integers(-4, 5)) / 4, e + float(rng.integers(-4, 5)) / 4
                if e <= s:
                    e = s + 0.5
            else:
                s = float(rng.integers(0, 40)) / 2
                e = s + float(rng.integers(1, 12)) / 2
            score = round(float(rng.random()), 1) if ties else float(rng.random())
            preds.append((video, s, e, f"class{c}", score))
    return gt, preds


def _instances(gt, preds):
    return (Instances([g[0] for g in gt], np.array([g[1:3] for g in gt]).reshape(-1, 2), [g[3] for g in gt]),
            Instances([p[0] for p in preds], np.array([p[1:3] for p in preds]).reshape(-1, 2), [p[3] for p in preds],
                      np.array([p[4] for p in preds])))


@pytest.mark.parametrize("ties", [False, True])
def test_vectorised_map_equals_the_restatement_on_random_cases(ties):
    rng = np.random.default_rng(7 + ties)
    for _ in range(60):
        gt, preds = _random_case(rng, ties=ties)
        if not gt:
            continue
        result = detection_map(*_instances(gt, preds), DEFAULT_TIOU)
        for c, label in enumerate(result.labels):
            g = [x[:3] for x in gt if x[3] == label]
            p = [(x[0], x[1], x[2], x[4]) for x in preds if x[3] == label]
            for t, thr in enumerate(DEFAULT_TIOU):
                assert result.ap[t, c] == pytest.approx(_reference_ap(g, p, thr), abs=1e-12), (label, thr)


# ----------------------------------------------------------------------------------------------
# Hand-computed cases.


def test_segment_iou_and_interpolated_ap_by_hand():
    # [0,4] vs [2,6]: intersection 2, union 6; vs [5,6]: nothing; vs [0,4]: 1
    assert segment_iou([0, 4], [[2, 6], [5, 6], [0, 4]]).tolist() == pytest.approx([1 / 3, 0.0, 1.0])
    # precision 1, 0.5, 2/3 at recall 0.5, 0.5, 1: envelope 1 then 2/3 -> 0.5*1 + 0.5*2/3
    assert interpolated_ap([1, 0.5, 2 / 3], [0.5, 0.5, 1.0]) == pytest.approx(0.5 + 1 / 3)


def _doc_gt(annotations, subset="validation"):
    db = {}
    for video, s, e, label in annotations:
        db.setdefault(video, {"subset": subset, "duration": 100.0, "annotations": []})
        db[video]["annotations"].append({"segment": [s, e], "label": label})
    return {"version": "VERSION 1.3", "taxonomy": [], "database": db}


def _doc_pred(preds):
    res = {}
    for video, s, e, label, score in preds:
        res.setdefault(video, []).append({"label": label, "score": score, "segment": [s, e]})
    return {"version": "VERSION 1.3", "results": res, "external_data": {}}


def test_hand_case_one_instance_used_once_and_absent_video():
    gt = _doc_gt([("a", 0, 10, "jump"), ("a", 20, 30, "jump")])
    preds = _doc_pred([
        ("a", 0, 10, "jump", 0.9),    # TP (instance 1)
        ("a", 0, 9, "jump", 0.8),     # same instance again: tIoU 0.9 but used -> FP at every threshold
        ("z", 0, 10, "jump", 0.7),    # video without ground truth -> FP
        ("a", 20, 28, "jump", 0.6),   # tIoU 0.8 with instance 2: TP up to 0.8, FP above
    ])
    r = evaluate_detection(gt, preds, tiou=[0.5, 0.85])
    # at 0.5: hits 1,0,0,1 -> precision 1, .5, 1/3, .5; recall .5,.5,.5,1 -> .5*1 + .5*.5 = .75
    # at 0.85: hits 1,0,0,0 -> .5*1 = .5
    assert r.ap[:, 0].tolist() == pytest.approx([0.75, 0.5])
    assert r.average_mAP == pytest.approx(0.625)
    assert any("without ground truth" in n for n in r.notes)


def test_hand_case_equal_scores_later_listed_first_and_unknown_label_left_out():
    gt = _doc_gt([("a", 0, 10, "jump")])
    preds = _doc_pred([("a", 0, 10, "jump", 0.5), ("a", 50, 60, "jump", 0.5), ("a", 0, 10, "swim", 0.9)])
    r = evaluate_detection(gt, preds, tiou=[0.5])
    # Equal scores: the later one (the miss) first -> precision 0 then 1/2 at recall 1 -> AP 0.5
    assert r.ap[0, 0] == pytest.approx(0.5)
    assert any("'swim'" in n and "KeyError" in n for n in r.notes)


def test_subset_blocked_and_class_without_predictions():
    gt = _doc_gt([("a", 0, 10, "jump"), ("b", 0, 10, "run"), ("c", 0, 10, "jump")])
    gt["database"]["t"] = {"subset": "training", "duration": 5, "annotations": [{"segment": [0, 5], "label": "sit"}]}
    preds = _doc_pred([("a", 0, 10, "jump", 0.9), ("c", 0, 10, "jump", 0.8), ("t", 0, 5, "jump", 0.95)])
    r = evaluate_detection(gt, preds, tiou=[0.5])
    assert r.labels == ["jump", "run"]  # 'sit' is only in training
    # jump: FP (training video t), TP, TP -> precision 0, .5, 2/3 at recall 0, .5, 1 -> .5*2/3 + .5*2/3
    assert r.per_class()["jump"] == pytest.approx([2 / 3])
    assert r.per_class()["run"] == [0.0]
    assert any("another subset" in n for n in r.notes) and any("without predictions" in n for n in r.notes)
    blocked = evaluate_detection(gt, preds, tiou=[0.5], blocked=["t", "c"])
    assert blocked.instances["jump"] == 1 and blocked.per_class()["jump"] == pytest.approx([1.0])


@pytest.mark.parametrize("content, cause", [
    ("{not json", "not valid JSON"),
    ('{"version": 1}', "no 'database' object"),
    ('{"database": {"a": {"subset": "validation"}}}', "no 'annotations' list"),
    ('{"database": {"a": {"subset": "validation", "annotations": [{"label": "x"}]}}}', "needs 'segment' and 'label'"),
    ('{"database": {"a": {"subset": "training", "annotations": []}}}', "no annotated video in subset"),
])
def test_bad_ground_truth_is_one_line_naming_the_file(tmp_path, content, cause):
    path = tmp_path / "gt.json"
    path.write_text(content)
    preds = _doc_pred([])
    with pytest.raises(UsageError) as info:
        evaluate_detection(path, preds)
    msg = str(info.value)
    assert str(path) in msg and cause in msg and "\n" not in msg


def test_bad_prediction_score_names_the_video(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"results": {"v1": [{"label": "x", "score": "high", "segment": [0, 1]}]}}))
    with pytest.raises(UsageError, match=r"p\.json: video 'v1', prediction 0: 'score' must be a finite number"):
        evaluate_detection(_doc_gt([("v1", 0, 1, "x")]), path)


def test_parse_tiou():
    assert parse_tiou("0.3:0.7:0.1").tolist() == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7])
    assert parse_tiou("0.5,0.75").tolist() == [0.5, 0.75]
    with pytest.raises(UsageError, match="tiou"):
        parse_tiou("0.5:x")


# ----------------------------------------------------------------------------------------------
# The official code itself (Python 2.7), when it is available.

_OFFICIAL = os.environ.get("ACTIONCLIP_ACTIVITYNET_EVAL")
_PY27 = os.environ.get("ACTIONCLIP_PY27")

_RUNNER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from eval_detection import ANETdetection
out = []
for gt, pred, tiou in json.load(open(sys.argv[2])):
    try:
        a = ANETdetection(gt, pred, tiou_thresholds=np.array(tiou), subset='validation', check_status=False)
        a.evaluate()
        out.append({"ap": a.ap.tolist(), "index": a.activity_index})
    except Exception as e:
        out.append({"error": "%s: %s" % (type(e).__name__, e)})
json.dump(out, open(sys.argv[3], 'w'))
"""


def _official_skip_reason():
    if not _OFFICIAL or not _PY27:
        return ("set ACTIONCLIP_ACTIVITYNET_EVAL (activitynet/ActivityNet's Evaluation folder) and "
                "ACTIONCLIP_PY27 (Python 2.7 with numpy 1.16, pandas 0.24, joblib 0.14) to run the official code")
    if not (Path(_OFFICIAL) / "eval_detection.py").is_file():
        return f"ACTIONCLIP_ACTIVITYNET_EVAL={_OFFICIAL} has no eval_detection.py"
    return None


def _official_cases(tmp_path):
    """(name, gt doc, pred doc, tiou, pred doc the official code can read or None if the same)."""
    rng = np.random.default_rng(2024)
    cases = []
    for k in range(25):  # random, distinct scores (more than 16 predictions per class)
        gt = []
        while not gt:
            gt, preds = _random_case(rng, n_videos=8, n_classes=3, max_gt=3, max_pred=14)
        cases.append((f"random{k}", gt, preds, DEFAULT_TIOU.tolist()))
    # Equal scores, within one video and at most 16 predictions per class: beyond that the official
    # order of equal scores is numpy's unstable quicksort over Python 2's dict order (see detection.py).
    for k in range(10):
        gt = []
        while not gt:  # the official code cannot score a subset without ground truth (n_jobs == 0)
            gt, preds = _random_case(rng, n_videos=1, n_classes=2, max_gt=3, max_pred=16, ties=True, extra_videos=0)
        cases.append((f"ties{k}", gt, preds, [0.1, 0.3, 0.5, 0.7, 0.9]))
    base_gt = [("a", 0.0, 10.0, "jump"), ("a", 20.0, 30.0, "jump"), ("a", 20.0, 30.0, "jump"),
               ("b", 5.0, 15.0, "run"), ("c", 0.0, 4.0, "sit")]
    base_preds = [("a", 0.0, 10.0, "jump", 0.9), ("a", 1.0, 10.0, "jump", 0.9), ("a", 20.0, 29.0, "jump", 0.8),
                  ("a", 21.0, 30.0, "jump", 0.8), ("z", 0.0, 10.0, "jump", 0.95), ("b", 5.0, 12.5, "run", 0.4),
                  ("b", 5.0, 15.0, "run", 0.4)]
    # ... and a prediction on 't', a video of the training subset: a false positive for both codes
    cases.append(("class without predictions", base_gt, base_preds + [("t", 0.0, 3.0, "jump", 0.55)],
                  [0.5, 0.75, 0.95]))
    cases.append(("unknown label", base_gt, base_preds + [("a", 0.0, 10.0, "fly", 0.99)], [0.5, 0.75]))
    cases.append(("no predictions", base_gt, [], [0.5]))
    files = []
    for name, gt, preds, tiou in cases:
        gdoc, pdoc = _doc_gt([g for g in gt]), _doc_pred(preds)
        gdoc["database"]["t"] = {"subset": "training", "duration": 9.0,
                                 "annotations": [{"segment": [0, 3], "label": "jump"}]}
        known = {g[3] for g in gt}
        official_pdoc = _doc_pred([p for p in preds if p[3] in known])  # what it can read
        gpath, ppath, opath = (tmp_path / f"{len(files)}.{x}.json" for x in ("gt", "pred", "official"))
        gpath.write_text(json.dumps(gdoc))
        ppath.write_text(json.dumps(pdoc))
        opath.write_text(json.dumps(official_pdoc))
        files.append((name, gpath, ppath, opath, tiou, len(official_pdoc["results"]) != len(pdoc["results"])
                      or sum(map(len, official_pdoc["results"].values())) != len(preds)))
    return files


@pytest.mark.skipif(_official_skip_reason() is not None, reason=str(_official_skip_reason()))
def test_equals_the_official_activitynet_code(tmp_path):
    files = _official_cases(tmp_path)
    runner = tmp_path / "run_official.py"
    runner.write_text(_RUNNER)
    jobs = [(str(g), str(p), tiou) for _, g, p, _, tiou, _ in files]
    jobs += [(str(g), str(o), tiou) for _, g, _, o, tiou, differs in files if differs]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    proc = subprocess.run([_PY27, str(runner), _OFFICIAL, str(tmp_path / "jobs.json"), str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads((tmp_path / "out.json").read_text())
    by_job = {(g, p): o for (g, p, _), o in zip(jobs, out)}
    compared, worst = 0, 0.0
    for name, g, p, o, tiou, differs in files:
        official = by_job[(str(g), str(p))]
        if differs:
            # The official code stops on a label it does not know: say so, compare the rest.
            assert "error" in official and "KeyError" in official["error"], (name, official)
            official = by_job[(str(g), str(o))]
        assert "error" not in official, (name, official)
        ours = evaluate_detection(g, p, tiou=tiou)
        theirs = np.array(official["ap"])  # [T, C] in their class index order
        for label, c in official["index"].items():
            np.testing.assert_allclose(ours.ap[:, ours.labels.index(label)], theirs[:, c], atol=1e-6, err_msg=name)
            worst = max(worst, float(np.abs(ours.ap[:, ours.labels.index(label)] - theirs[:, c]).max()))
        np.testing.assert_allclose(ours.mAP, theirs.mean(axis=1), atol=1e-6, err_msg=name)
        compared += 1
    assert compared == len(files)
    print(f"official ActivityNet code: {compared} cases equal within 1e-6 "
          f"(largest difference {worst:.1e})", file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# The command.


def test_cli_detection_map_json_table_and_bad_input(tmp_path, capsys):
    from actionclip.cli import main

    gt, pred = tmp_path / "gt.json", tmp_path / "pred.json"
    gt.write_text(json.dumps(_doc_gt([("a", 0, 10, "jump"), ("a", 20, 30, "jump")])))
    pred.write_text(json.dumps(_doc_pred([("a", 0, 10, "jump", 0.9), ("a", 0, 9, "jump", 0.8),
                                          ("z", 0, 10, "jump", 0.7), ("a", 20, 28, "jump", 0.6)])))
    assert main(["detection-map", str(gt), str(pred), "--json", "--tiou", "0.5,0.85"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tiou"] == [0.5, 0.85] and doc["mAP"] == pytest.approx([0.75, 0.5])
    assert doc["average_mAP"] == pytest.approx(0.625) and doc["per_class"]["jump"]["ap"] == pytest.approx([0.75, 0.5])
    assert main(["detection-map", str(gt), str(pred), "--plot", str(tmp_path / "pr.png")]) == 0
    out = capsys.readouterr().out
    assert "average mAP" not in out and "jump" in out and (tmp_path / "pr.png").stat().st_size > 1000
    default = [l for l in out.splitlines() if l.startswith("mAP")][0].split()
    assert len(default) == 12  # 'mAP', ten thresholds, the average
    pred.write_text('{"results": {"a": [{"label": "jump", "segment": [0, 1]}]}}')
    assert main(["detection-map", str(gt), str(pred)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"actionclip: error: {pred}: video 'a', prediction 0: needs 'label', 'score' and 'segment'"
