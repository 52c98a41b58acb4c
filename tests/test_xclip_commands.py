"""X-CLIP behind the generic commands: classify, timeline, watch's scorer, eval; train and export refuse
in one line. A tiny random X-CLIP in the original release layout, synthetic videos."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_support import error_lines, make_video
from timeline_support import colour_video

import actionclip
from actionclip.cli import main
from actionclip.errors import UsageError

LABELS = ["juggling", "swimming", "dancing"]


@pytest.fixture(scope="module")
def xclip_path(tmp_path_factory):
    from actionclip._dev.xclip_weights import write_xclip_checkpoint

    return write_xclip_checkpoint(tmp_path_factory.mktemp("xclip") / "k400_32_4.pth", "xclip", frames=4,
                                  training_state=True)


@pytest.fixture(scope="module")
def model(xclip_path):
    return actionclip.load(xclip_path, dtype="fp32")


def test_loaded_model_carries_xclip_conventions(model):
    from actionclip.video.preprocess import IMAGENET_MEAN, IMAGENET_STD

    assert model.family == "xclip" and model.num_frames == 4 and not model.frame_independent
    assert model.templates == ["{}"] and model.config.preprocessing.mean == IMAGENET_MEAN
    assert model.config.preprocessing.std == IMAGENET_STD and model.config.preprocessing.interpolation == "bilinear"
    assert float(model.logit_scale.detach()) == pytest.approx(100.0, rel=1e-4)
    # Label features stay raw (the prompt generator adds to them): not unit vectors.
    norms = model.encode_labels(LABELS).norm(dim=-1)
    assert float((norms - 1).abs().min()) > 1e-3


def test_cli_classify_matches_the_python_api(model, xclip_path, tmp_path, capsys):
    video = make_video(tmp_path / "clip.mp4", seconds=1.5)
    code = main(["classify", str(video), "--model", str(xclip_path), "--dtype", "fp32", "--json",
                 *[a for label in LABELS for a in ("-t", label)], "--clips", "2"])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    cli = {r["label"]: r["prob"] for r in record["results"]}
    api = dict(model.classify(video, LABELS, clips=2))
    assert set(cli) == set(LABELS) and sum(cli.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(cli[label] == pytest.approx(api[label], abs=1e-5) for label in LABELS)


def test_classify_with_other_frames_is_one_line(xclip_path, tmp_path, capsys):
    video = make_video(tmp_path / "clip.mp4")
    code = main(["classify", str(video), "--model", str(xclip_path), "--frames", "8", "-t", "a", "-t", "b"])
    (line,) = error_lines(capsys.readouterr().err)
    assert code == 1 and "takes 4 frames per clip" in line
    with pytest.raises(UsageError, match="integrates exactly 4 frames"):
        actionclip.load(xclip_path, frames=8)


def test_timeline_windows_equal_encoding_each_window(model, tmp_path):
    """Not frame-independent: every window is encoded whole, and scores as the clip would alone."""
    from actionclip.temporal.detection import IndependentScorer
    from actionclip.temporal.timeline import timeline
    from actionclip.video import iter_frames
    from actionclip.video.preprocess import preprocess_frames

    path = tmp_path / "v.mp4"
    colour_video(path, [("red", 1.0), ("green", 1.5)])
    result = timeline(model, path, LABELS, window=1.0, stride=0.25, window_batch=3)
    grid = [f for _, f in iter_frames(path, fps=4.0)]
    assert len(result.starts) == len(grid) - 3 and result.stats["frames_encoded"] == 4 * len(result.starts)
    label_emb = model.encode_labels(LABELS)
    detector = IndependentScorer(model, LABELS)
    with torch.inference_mode():
        for i in range(len(result.starts)):
            pixels = preprocess_frames(torch.from_numpy(np.stack(grid[i:i + 4])), model.config.preprocessing)
            features = model.encode_video(pixels[None])
            torch.testing.assert_close(torch.from_numpy(result.probs[i]),
                                       model.probabilities(features, label_emb)[0], atol=2e-5, rtol=1e-4)
            torch.testing.assert_close(torch.from_numpy(result.scores[i]), detector.scores(features)[0],
                                       atol=2e-5, rtol=1e-4)


def test_cli_timeline_writes_its_files(xclip_path, tmp_path, capsys):
    path = tmp_path / "v.mp4"
    colour_video(path, [("red", 1.0), ("green", 1.0)])
    prefix = tmp_path / "out" / "tl"
    code = main(["timeline", str(path), "--model", str(xclip_path), "--dtype", "fp32", "-t", "juggling",
                 "-t", "swimming", "--window", "1", "--stride", "0.5", "-o", str(prefix), "--no-plot"])
    assert code == 0, capsys.readouterr().err
    windows = json.loads(prefix.with_name("tl.windows.json").read_text())
    assert windows["labels"] == ["juggling", "swimming"] and len(windows["windows"]) >= 2


def test_cli_eval_reports_every_clip(xclip_path, tmp_path, capsys):
    from actionclip._dev.videos import make_test_video

    root = tmp_path / "set"
    for label in ("run", "jump"):
        for i in range(2):
            make_test_video(root / label / f"{label}{i}.mp4", num_frames=10, size=(48, 40), fps=10)
    out = tmp_path / "report"
    code = main(["eval", str(root), "--model", str(xclip_path), "--out", str(out), "--quiet", "--crops", "3",
                 "--batch-size", "2"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["evaluated"] == 4 and report["settings"]["crops"] == 3
    assert all(abs(sum(p for _, p in r["top5"]) - 1) < 1e-4 for r in report["predictions"])


def test_train_and_export_refuse_in_one_line(xclip_path, tmp_path, capsys):
    from actionclip._dev.videos import make_test_video

    root = tmp_path / "set"
    for label in ("run", "jump"):
        make_test_video(root / label / f"{label}.mp4", num_frames=10, size=(48, 40), fps=10)
    assert main(["train", str(root), "--model", str(xclip_path), "-o", str(tmp_path / "run"), "--epochs", "1"]) == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert "fine-tuning supports ActionCLIP and CLIP models" in line
    assert main(["export", str(xclip_path), "--onnx", str(tmp_path / "onnx")]) == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert "ONNX export" in line and "xclip" in line
    assert not list((tmp_path / "onnx").glob("*.onnx"))


def test_watch_scores_windows_of_a_file_source(model, tmp_path):
    path = tmp_path / "v.mp4"
    colour_video(path, [("red", 1.5), ("green", 1.5)])
    updates = list(model.watch(path, LABELS, window=1.0, every=1.0, realtime=False, reconnect=False))
    assert len(updates) >= 2
    for update in updates:
        assert sum(update.probs.values()) == pytest.approx(1.0, abs=1e-4) and update.frames == 4
