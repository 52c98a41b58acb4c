"""THUMOS14 kit protocol: small generated annotation folders with answers worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from actionclip.cli import main
from actionclip.errors import UsageError
from actionclip.evaluation.thumos14 import evaluate_thumos14, kit_overlap


def _kit(tmp_path, ambiguous="v1 70 80\n", detections=None):
    gt = tmp_path / "annotation"
    gt.mkdir(parents=True)
    (gt / "detclasslist.txt").write_text("1 Jump\n2 Run\n")
    (gt / "Jump_test.txt").write_text("v1 10 20\nv1 30 40\nv2 0 10\n")
    (gt / "Run_test.txt").write_text("v1 50 60\n")
    (gt / "Ambiguous_test.txt").write_text(ambiguous)
    det = tmp_path / "det.txt"
    det.write_text(detections if detections is not None else
                   "v1 10 20 1 0.9\n"     # Jump instance 1, tIoU 1: TP
                   "v1 12 20 1 0.8\n"     # instance 1 again (taken): FP
                   "v1 31 40 1 0.7\n"     # instance 2, tIoU 0.9: TP
                   "v1 72 78 1 0.95\n"    # inside the ambiguous segment, unmatched: dropped
                   "v3 0 5 1 0.6\n"       # video without instances: FP
                   "v2.mpeg 5 10 1 0.5\n"  # instance 3, tIoU exactly 0.5: TP only below 0.5 (strict >)
                   "v1 50 60 5 0.9\n")    # class id 5 is not in the list: ignored
    return gt, det


def test_hand_computed_kit_map(tmp_path):
    gt, det = _kit(tmp_path)
    r = evaluate_thumos14(gt, det)
    assert r.tiou.tolist() == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7])
    # 0.3 and 0.4: TP FP TP FP TP -> (1 + 2/3 + 3/5) / 3 instances = 34/45
    # 0.5 to 0.7: TP FP TP FP FP -> (1 + 2/3) / 3 = 5/9
    assert r.per_class()["Jump"] == pytest.approx([34 / 45, 34 / 45, 5 / 9, 5 / 9, 5 / 9])
    assert r.per_class()["Run"] == [0.0] * 5  # no detection: AP 0
    assert r.mAP.tolist() == pytest.approx([17 / 45, 17 / 45, 5 / 18, 5 / 18, 5 / 18])
    assert any("class id(s) not in the class list (5)" in n for n in r.notes)
    assert any("without detections ('Run')" in n for n in r.notes)


def test_ambiguous_segments_remove_unmatched_detections_only(tmp_path):
    gt, det = _kit(tmp_path, ambiguous="")
    # Without the ambiguous segment the 0.95 detection is the first FP: FP TP FP TP FP TP at 0.3
    assert evaluate_thumos14(gt, det).per_class()["Jump"][0] == pytest.approx((1 / 2 + 2 / 4 + 3 / 6) / 3)
    # An ambiguous segment over a true positive leaves it a true positive.
    gt2, det2 = _kit(tmp_path / "b", ambiguous="v1 10 20\n", detections="v1 10 20 1 0.9\n")
    assert evaluate_thumos14(gt2, det2).per_class()["Jump"][0] == pytest.approx(1 / 3)


def test_matching_runs_over_instances_and_equal_overlap_takes_the_most_confident(tmp_path):
    # Two detections with the same tIoU with one instance: the more confident one is the TP.
    gt, det = _kit(tmp_path, detections="v2 0 5 1 0.4\nv2 5 10 1 0.8\n")
    # at 0.3: the 0.8 detection matches (listed second but more confident): TP FP -> 1/3
    assert evaluate_thumos14(gt, det).per_class()["Jump"][0] == pytest.approx(1 / 3)


def test_kit_overlap():
    ov = kit_overlap([[0, 10], [20, 10]], [[5, 15], [30, 40], [10, 20]])
    # [0,10] vs [5,15]: 5 over the span 0..15; touching or apart: 0; reversed [20,10] is [10,20]
    np.testing.assert_allclose(ov, [[1 / 3, 0.0, 0.0], [1 / 3, 0.0, 1.0]])


def test_missing_class_file_and_bad_line_are_one_line(tmp_path):
    gt, det = _kit(tmp_path)
    (gt / "Run_test.txt").unlink()
    with pytest.raises(UsageError, match=r"Run_test\.txt: no such ground truth file"):
        evaluate_thumos14(gt, det)
    gt2, det2 = _kit(tmp_path / "b", detections="v1 10 twenty 1 0.9\n")
    with pytest.raises(UsageError, match=r"det\.txt: line 1: expected numbers"):
        evaluate_thumos14(gt2, det2)


def test_cli_detection_map_reads_a_thumos_folder(tmp_path, capsys):
    gt, det = _kit(tmp_path)
    assert main(["detection-map", str(gt), str(det), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["protocol"] == "thumos14" and doc["mAP"][0] == pytest.approx(17 / 45)
    assert np.allclose(doc["per_class"]["Jump"]["ap"], [34 / 45, 34 / 45, 5 / 9, 5 / 9, 5 / 9])
    # the validation files (<Class>_val.txt) with --subset val; without them, one line
    assert main(["detection-map", str(gt), str(det), "--subset", "val"]) == 1
    assert "Jump_val.txt: no such ground truth file" in capsys.readouterr().err
    for name in ("Jump", "Run", "Ambiguous"):
        (gt / f"{name}_val.txt").write_text((gt / f"{name}_test.txt").read_text())
    assert main(["detection-map", str(gt), str(det), "--subset", "val", "--json", "--tiou", "0.3"]) == 0
    assert json.loads(capsys.readouterr().out)["mAP"] == [pytest.approx(17 / 45)]
