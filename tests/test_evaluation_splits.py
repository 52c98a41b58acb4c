"""Open-vocabulary protocol: seeded seen/unseen splits, unseen-class accuracy, mean ± std, split files.

The shortcut (every clip encoded once, each split scored from stored logits) is checked against the
plain evaluation (``training.evaluate.evaluate`` on ``split_classes``'s unseen dataset) split by split.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from actionclip.evaluation.splits import class_splits, evaluate_open_vocabulary, score_split
from timeline_support import arranged_model, colour_video, meanp_checkpoint  # noqa: F401

# Colours the arranged model recognises: red juggling, green swimming, blue dancing; other labels are
# "background" (equally close to every colour), so red "cooking" clips are right only when juggling is
# not a candidate: accuracy really depends on the split.
CLASSES = {"juggling": "red", "swimming": "green", "dancing": "blue", "cooking": "red", "sitting": "grey",
           "reading": "grey", "boxing": "green", "skiing": "blue"}


@pytest.fixture(scope="module")
def dataset_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("ovdata")
    for name, colour in CLASSES.items():
        for k in range(2):
            colour_video(root / name / f"{name}{k}.mp4", [(colour, 0.6 + 0.1 * k)])
    return root


def test_score_split_by_hand():
    # logits [N=3, V=1, K=1, C=3]; clips of classes 0, 1, 2
    logits = np.array([[5.0, 1.0, 0.0], [4.0, 3.0, 0.0], [0.0, 0.0, 9.0]])[:, None, None, :]
    labels = np.array([0, 1, 2])
    # all three candidates: clip 1 is taken for class 0 -> top-1 2/3; mean class (1 + 0 + 1) / 3
    r = score_split(logits, labels, [0, 1, 2])
    assert r["top1"] == pytest.approx(2 / 3) and r["mean_class"] == pytest.approx(2 / 3) and r["top5"] == 1.0
    # only classes 1 and 2 are candidates: clip 0 is not scored, clip 1 is now right
    r = score_split(logits, labels, [1, 2])
    assert (r["top1"], r["clips"], r["classes"]) == (1.0, 2, 2)


def test_splits_are_seeded_and_are_split_classes(dataset_folder):
    from actionclip.training.datasets import load_dataset, split_classes

    ds = load_dataset(dataset_folder)
    a = class_splits(ds, 0.25, splits=10, seed=3)
    assert a == class_splits(ds, 0.25, splits=10, seed=3)
    assert [s for s, _, _ in a] == list(range(3, 13))
    for s, seen, unseen in a:
        assert len(unseen) == 2 and len(seen) == 6 and not set(seen) & set(unseen)
        base, novel = split_classes(ds, novel_fraction=0.25, seed=s)
        assert (seen, unseen) == (base.class_names, novel.class_names)
    assert len({tuple(u) for _, _, u in a}) > 1  # different seeds, different splits
    assert all(len(u) == 4 for _, _, u in class_splits(ds, 0.5, splits=3))


def test_open_vocabulary_equals_plain_eval_per_split_and_writes_split_files(arranged_model, dataset_folder, tmp_path):
    from actionclip.training.datasets import load_dataset, split_classes
    from actionclip.training.evaluate import evaluate

    model = arranged_model[0]
    ds = load_dataset(dataset_folder)
    report = evaluate_open_vocabulary(model, ds, splits=4, seed=0, frames=4, workers=0)
    for protocol, fraction in (("75/25", 0.25), ("50/50", 0.5)):
        rows = report.splits[protocol]
        assert len(rows) == 4
        for row in rows:
            plain = evaluate(model, split_classes(ds, novel_fraction=fraction, seed=row["seed"])[1], frames=4,
                             workers=0, progress=False)
            assert row["top1"] == pytest.approx(plain.top1) and row["mean_class"] == pytest.approx(plain.mean_class_accuracy)
        top1 = [r["top1"] for r in rows]
        assert report.summary()[protocol]["top1"] == {"mean": pytest.approx(np.mean(top1)), "std": pytest.approx(np.std(top1))}
    assert len({r["top1"] for rows in report.splits.values() for r in rows}) > 1  # the splits matter
    paths = report.save(tmp_path / "ov")
    doc = json.loads(paths["report"].read_text())
    first = doc["splits"]["50/50"][0]
    unseen_file = tmp_path / "ov" / first["files"]["unseen"]
    assert unseen_file.read_text().split("\n")[:-1] == first["unseen"]
    assert (tmp_path / "ov" / "splits" / "75-25" / "split04.seen.txt").is_file()
    assert "±" in report.table()


def test_cli_eval_open_vocab(arranged_model, dataset_folder, tmp_path, monkeypatch, capsys):
    from actionclip.cli import main, options

    monkeypatch.setattr(options, "load_model", lambda args, frames=None: arranged_model[0])
    assert main(["eval-open-vocab", str(dataset_folder), "--splits", "2", "--protocol", "50/50", "--frames", "4",
                 "--workers", "0", "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "50/50" in out and "75/25" not in out
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    assert list(doc["summary"]) == ["50/50"] and len(doc["splits"]["50/50"]) == 2
