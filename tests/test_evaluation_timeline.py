"""Our timelines written as detection results and scored: timeline --format, eval-timeline.

The arranged model (tests/timeline_support.py) sees a frame's colour as one label, so videos made of
coloured stretches have a known ground truth: a correct pipeline scores AP 1 at tIoU 0.5.
"""

from __future__ import annotations

import json

import pytest

from actionclip.evaluation.activitynet import evaluate_detection
from actionclip.evaluation.predictions import match_video_ids, run_timelines, write_predictions
from timeline_support import LABELS, arranged_model, colour_video, meanp_checkpoint  # noqa: F401

COLOUR_LABEL = {"red": "juggling", "green": "swimming", "blue": "dancing"}
CLIPS = {"v_one": [("red", 3.0), ("grey", 2.0), ("green", 3.0)],
         "v_two": [("blue", 3.0), ("grey", 2.0), ("red", 2.5)]}
OPTIONS = dict(window=1.0, stride=0.25, frames=4)


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    """Two coloured videos and their ActivityNet ground truth (ids without the v_ prefix)."""
    folder = tmp_path_factory.mktemp("annotated")
    database = {}
    for name, stretches in CLIPS.items():
        colour_video(folder / f"{name}.mp4", stretches)
        t, anns = 0.0, []
        for colour, seconds in stretches:
            if colour in COLOUR_LABEL:
                anns.append({"segment": [t, t + seconds], "label": COLOUR_LABEL[colour]})
            t += seconds
        database[name[2:]] = {"subset": "validation", "duration": t, "annotations": anns}
    gt = folder / "gt.json"
    gt.write_text(json.dumps({"version": "1.3", "taxonomy": [], "database": database}))
    return folder, gt


def test_timelines_written_as_activitynet_score_ap_one(arranged_model, annotated, tmp_path):
    model = arranged_model[0]
    folder, gt = annotated
    videos = sorted(str(p) for p in folder.glob("*.mp4"))
    ids, missing = match_video_ids(videos, json.loads(gt.read_text())["database"])
    assert not missing and sorted(ids.values()) == ["one", "two"]
    # Two files with one name are told apart by their folder; an unknown name is reported.
    ids2, missing2 = match_video_ids(["a/test.mp4", "b/test.mp4", "c/x.mp4"], ["a/test", "b/test", "test"])
    assert ids2 == {"a/test.mp4": "a/test", "b/test.mp4": "b/test"}
    assert missing2 == [("c/x.mp4", "no video with this id in the ground truth")]
    ids3, missing3 = match_video_ids(["a/test.mp4", "b/test.mp4"], ["test"])
    assert not ids3 and [cause for _, cause in missing3] == ["2 files match the id 'test' (name it folder/name)"] * 2
    results = run_timelines(model, videos, LABELS, **OPTIONS)
    path = write_predictions(tmp_path / "pred.json", results, "activitynet", ids=ids)
    doc = json.loads(path.read_text())
    assert sorted(doc["results"]) == ["one", "two"] and doc["results"]["one"][0]["label"] == "juggling"
    r = evaluate_detection(gt, path, tiou=[0.5, 0.7])
    assert r.per_class() == {"juggling": [1.0, 1.0], "swimming": [1.0, 1.0], "dancing": [1.0, 1.0]}
    # Filed under the stems (v_one), the ids are unknown to the ground truth: every prediction misses.
    stems = write_predictions(tmp_path / "stems.json", results, "activitynet")
    assert evaluate_detection(gt, stems, tiou=[0.5]).average_mAP == 0.0


def test_cli_timeline_format_writes_one_file_for_all_videos(arranged_model, annotated, tmp_path, monkeypatch, capsys):
    from actionclip.cli import main, options

    monkeypatch.setattr(options, "load_model", lambda args, frames=None: arranged_model[0])
    folder, gt = annotated
    labels = [a for label in LABELS for a in ("-t", label)]
    common = ["--window", "1", "--stride", "0.25", "--frames", "4"]
    out = tmp_path / "th14.txt"
    code = main(["timeline", str(folder), str(tmp_path / "missing.mp4"), *labels, *common,
                 "--format", "thumos14", "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 1  # one input failed, the others were written
    assert captured.err.strip() == f"actionclip: error: {tmp_path / 'missing.mp4'}: no such file or directory"
    lines = [l.split() for l in out.read_text().splitlines()]
    assert {l[0] for l in lines} == {"v_one", "v_two"}
    assert {(l[0], l[3]) for l in lines} >= {("v_one", "1"), ("v_one", "2"), ("v_two", "3")}  # ids: label order
    code = main(["timeline", str(folder / "v_one.mp4"), str(folder / "v_two.mp4"), *labels, *common,
                 "--format", "activitynet", "-o", str(tmp_path / "pred.json")])
    assert code == 0
    capsys.readouterr()
    # The stems are v_one, v_two; the ground truth says one, two: rename as a user would, then score.
    doc = json.loads((tmp_path / "pred.json").read_text())
    doc["results"] = {k[2:]: v for k, v in doc["results"].items()}
    (tmp_path / "pred.json").write_text(json.dumps(doc))
    assert main(["detection-map", str(gt), str(tmp_path / "pred.json"), "--json", "--tiou", "0.5"]) == 0
    assert json.loads(capsys.readouterr().out)["mAP"] == [1.0]


def test_cli_timeline_several_videos_without_format_is_one_line(tmp_path, capsys):
    from actionclip.cli import main

    assert main(["timeline", "a.mp4", "b.mp4", "-t", "x"]) == 1
    assert "give --format" in capsys.readouterr().err


def test_cli_eval_timeline_runs_timelines_and_scores(arranged_model, annotated, tmp_path, monkeypatch, capsys):
    from actionclip.cli import main, options

    monkeypatch.setattr(options, "load_model", lambda args, frames=None: arranged_model[0])
    folder, gt = annotated
    out = tmp_path / "report"
    assert main(["eval-timeline", str(folder), "--ground-truth", str(gt), "-o", str(out), "--window", "1",
                 "--stride", "0.25", "--frames", "4", "--tiou", "0.5,0.7", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["average_mAP"] == 1.0 and sorted(doc["per_class"]) == ["dancing", "juggling", "swimming"]
    assert {p.name for p in out.iterdir()} == {"predictions.json", "report.json", "report.txt", "pr.png"}
    assert json.loads((out / "report.json").read_text())["average_mAP"] == 1.0


def test_cli_eval_timeline_on_a_thumos14_folder(arranged_model, annotated, tmp_path, monkeypatch, capsys):
    from actionclip.cli import main, options

    monkeypatch.setattr(options, "load_model", lambda args, frames=None: arranged_model[0])
    folder, _ = annotated
    kit = tmp_path / "kit"
    kit.mkdir()
    # class ids that are not 1..N: the predictions must carry the list's ids, not the labels' order
    (kit / "detclasslist.txt").write_text("7 juggling\n9 swimming\n12 dancing\n")
    lines = {label: [] for label in COLOUR_LABEL.values()}
    for name, stretches in CLIPS.items():
        t = 0.0
        for colour, seconds in stretches:
            if colour in COLOUR_LABEL:
                lines[COLOUR_LABEL[colour]].append(f"{name} {t} {t + seconds}\n")
            t += seconds
    for label, rows in lines.items():
        (kit / f"{label}_test.txt").write_text("".join(rows))
    (kit / "Ambiguous_test.txt").write_text("")
    out = tmp_path / "th14"
    assert main(["eval-timeline", str(folder), "--ground-truth", str(kit), "-o", str(out), "--window", "1",
                 "--stride", "0.25", "--frames", "4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["protocol"] == "thumos14" and doc["mAP"] == [1.0] * 5
    assert {line.split()[3] for line in (out / "predictions.txt").read_text().splitlines()} == {"7", "9", "12"}


def test_public_api_names():
    import actionclip
    from actionclip.evaluation import activitynet, retrieval, splits, thumos14

    assert actionclip.evaluate_detection is activitynet.evaluate_detection
    assert actionclip.evaluate_thumos14 is thumos14.evaluate_thumos14
    assert actionclip.evaluate_retrieval is retrieval.evaluate_retrieval
    assert actionclip.retrieval_metrics is retrieval.retrieval_metrics
    assert actionclip.evaluate_open_vocabulary is splits.evaluate_open_vocabulary
