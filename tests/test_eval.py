"""actionclip eval: figures, report, confusion PNG, failures, multi-view, base-to-novel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from actionclip.cli import main
from actionclip.model.base import VideoTextModel
from actionclip.model.config import ModelConfig
from actionclip.model.scoring import TORCH
from actionclip.training.datasets import Sample, VideoDataset, load_dataset
from actionclip.training.evaluate import evaluate


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    """Three classes of two short synthetic clips each, plus one broken file."""
    from actionclip._dev.videos import make_test_video

    root = tmp_path_factory.mktemp("evalset")
    for label in ("run", "jump", "wave"):
        for i in range(2):
            make_test_video(root / label / f"{label}{i}.mp4", num_frames=10, size=(48, 40), fps=10)
    (root / "wave" / "broken.mp4").write_bytes(b"\x00not a video at all" * 10)
    return root


class _FakeModel(VideoTextModel):
    """Scores fixed per video by its file name, to check the bookkeeping of every figure."""

    name = "fake"
    device = torch.device("cpu")
    ops = TORCH

    def __init__(self, scores: dict[str, list[float]]):
        self.config = ModelConfig(frames=2)
        self.scores = scores

    def encode_labels(self, labels, templates=None):
        return torch.eye(len(labels))[None]

    @property
    def views(self):
        return self.prepare_video

    def prepare_video(self, video, frames=None, clips=1, crops=1, normalize=True):
        # floats whatever ``normalize`` asks: the pipeline takes floats as already normalised
        return torch.tensor(self.scores[Path(video).name]).view(1, 1, -1).expand(clips * crops, 1, -1)

    def encode_video(self, pixels):
        return pixels[:, 0]

    def probabilities(self, emb, label_emb):
        return emb.mean(dim=1).softmax(dim=-1)


def test_figures_are_computed_from_the_predictions(tmp_path):
    names = [f"v{i}.mp4" for i in range(6)]
    for n in names:
        (tmp_path / n).write_bytes(b"")
    labels = [0, 0, 1, 1, 2, 2]
    # v0 right; v1 -> class 1; v2 right; v3 right; v4 -> class 0 (true class ranked 3rd); v5 right
    scores = {"v0.mp4": [3, 1, 0], "v1.mp4": [1, 3, 0], "v2.mp4": [0, 3, 1], "v3.mp4": [1, 2, 0],
              "v4.mp4": [3, 2, 1], "v5.mp4": [0, 1, 4]}
    ds = VideoDataset([Sample(tmp_path / n, y, n) for n, y in zip(names, labels)], ["a", "b", "c"], ["a", "b", "c"])
    report = evaluate(_FakeModel({k: [float(x) for x in v] for k, v in scores.items()}), ds, workers=0,
                      progress=False, clips=2, crops=3)
    assert report.top1 == pytest.approx(4 / 6)
    assert report.top5 == 1.0  # only 3 classes: top-5 = top-3
    per = {c["class"]: c["accuracy"] for c in report.per_class()}
    assert per == {"a": 0.5, "b": 1.0, "c": 0.5}
    assert report.mean_class_accuracy == pytest.approx(2 / 3)
    assert report.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    v4 = next(p for p in report.predictions if p["path"].endswith("v4.mp4"))
    assert v4["prediction"] == "a" and v4["rank"] == 3 and not v4["correct"]
    assert v4["top5"][0][0] == "a" and len(v4["top5"]) == 3
    assert report.settings["clips"] == 2 and report.settings["crops"] == 3


def test_failing_video_is_reported_and_skipped(small_set, tiny_checkpoint, tmp_path, capsys):
    import actionclip

    model = actionclip.load(tiny_checkpoint, dtype="fp32")
    ds = load_dataset(small_set)
    seen = []
    report = evaluate(model, ds, workers=2, progress=False, on_failure=lambda s, e: seen.append(s.path.name))
    assert seen == ["broken.mp4"] and report.failures[0]["path"].endswith("broken.mp4")
    assert report.evaluated == 6 and report.confusion.sum() == 6
    # Random weights: accuracy means nothing, but every prediction is a proper distribution.
    assert all(abs(sum(p for _, p in r["top5"]) - 1) < 1e-4 for r in report.predictions)


def test_cli_eval_writes_report_and_png(small_set, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["eval", str(small_set), "--model", str(tiny_checkpoint), "--out", str(out), "--quiet",
                 "--clips", "2", "--workers", "2"])
    assert code == 1  # one video failed
    captured = capsys.readouterr()
    assert "broken.mp4" in captured.err and "top-1 accuracy" in captured.out
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["evaluated"] == 6 and report["summary"]["failed"] == 1
    assert len(report["predictions"]) == 6 and report["settings"]["clips"] == 2
    assert np.array(report["confusion"]).sum() == 6
    with Image.open(out / "confusion.png") as png:
        assert png.format == "PNG" and png.size[0] >= 300


def test_cli_eval_base_to_novel_uses_only_novel_classes(small_set, tiny_checkpoint, tmp_path):
    out = tmp_path / "novel"
    novel = tmp_path / "novel.txt"
    novel.write_text("jump\nwave\n")
    main(["eval", str(small_set), "--model", str(tiny_checkpoint), "--out", str(out), "--quiet",
          "--novel", str(novel)])
    report = json.loads((out / "report.json").read_text())
    assert report["classes"] == ["jump", "wave"] and report["settings"]["subset"] == "novel"
    assert {p["label"] for p in report["predictions"]} == {"jump", "wave"}
    base = tmp_path / "base"
    main(["eval", str(small_set), "--model", str(tiny_checkpoint), "--out", str(base), "--quiet",
          "--novel", str(novel), "--subset", "base"])
    assert json.loads((base / "report.json").read_text())["classes"] == ["run"]


@pytest.mark.shared_data
@pytest.mark.heavy
def test_eval_on_shared_clips(shared_data, tiny_checkpoint, tmp_path):
    out = tmp_path / "shared"
    code = main(["eval", str(shared_data / "clips" / "manifest.csv"), "--model", str(tiny_checkpoint),
                 "--out", str(out), "--quiet", "--workers", "2"])
    report = json.loads((out / "report.json").read_text())
    summary = report["summary"]
    assert summary["clips"] == 57 and summary["evaluated"] + summary["failed"] == 57
    assert summary["evaluated"] >= 50 and code == (1 if summary["failed"] else 0)
    assert len(report["per_class"]) == 57 and 0 <= summary["top1"] <= summary["top5"] <= 1
    print(f"\nshared clips: {summary}")
    with Image.open(out / "confusion.png") as png:
        assert png.format == "PNG"


@pytest.mark.heavy
def test_process_workers_give_the_same_report_as_threads(small_set, tiny_checkpoint):
    import actionclip

    model = actionclip.load(tiny_checkpoint, dtype="fp32")
    ds = load_dataset(small_set)
    quiet = lambda s, e: None  # noqa: E731
    threads = evaluate(model, ds, workers=2, progress=False, on_failure=quiet)
    processes = evaluate(model, ds, workers=2, processes=True, progress=False, on_failure=quiet)
    assert processes.evaluated == threads.evaluated == 6
    assert [p["path"] for p in processes.failures] == [p["path"] for p in threads.failures]
    for a, b in zip(threads.predictions, processes.predictions):
        assert a["path"] == b["path"] and a["prediction"] == b["prediction"]
        assert a["label_probability"] == pytest.approx(b["label_probability"], abs=1e-6)
