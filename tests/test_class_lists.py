"""Built-in class lists reach the text encoder as words, by one rule, on every path.

``eval`` has always turned a dataset's class names into words (``UnevenBars`` -> ``uneven bars``);
``classify --labels ucf101`` gave the encoder the raw names, which it scores differently. Every
path that takes a built-in list now gives the model :func:`actionclip.text.classes.builtin_labels`.
"""

from __future__ import annotations

import json

import pytest

from actionclip.cli import main
from actionclip.text.classes import BUILTIN_CLASS_LISTS, builtin_classes, builtin_labels
from cli_support import ckpt, json_lines, make_video  # noqa: F401

LIST = "hmdb51"  # 51 classes with underscores: brush_hair, fall_floor, ...


@pytest.mark.parametrize("name", BUILTIN_CLASS_LISTS)
def test_builtin_labels_are_the_words_eval_gives_the_model(name, tmp_path):
    from actionclip.training.datasets import load_dataset

    names = builtin_classes(name)
    listing = tmp_path / "list.csv"
    listing.write_text(f"path,label\nclip.mp4,{names[0]}\n")
    dataset = load_dataset(listing, classes=name, check_files=False)  # what eval scores against
    assert builtin_labels(name) == dataset.classes
    assert dataset.class_names == names


def test_the_rule_turns_names_into_words():
    assert builtin_labels("ucf101")[:2] == ["apply eye makeup", "apply lipstick"]
    assert "uneven bars" in builtin_labels("ucf101") and "juggling balls" in builtin_labels("ucf101")
    assert builtin_labels("hmdb51")[0] == "brush hair"
    assert builtin_labels("k400")[1] == "air drumming"


@pytest.fixture
def encoded(monkeypatch):
    """Every label list handed to a model's encode_labels during the test."""
    from actionclip.model.base import VideoTextModel

    calls: list[list[str]] = []
    real = VideoTextModel.encode_labels

    def spy(self, labels, templates=None):
        calls.append(list(labels))
        return real(self, labels, templates)

    monkeypatch.setattr(VideoTextModel, "encode_labels", spy)
    return calls


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=2.0)


COMMANDS = {
    "classify": ["classify", "VIDEO", "--json"],
    "classify --index": ["classify", "--index", "INDEX", "--json"],
    "timeline": ["timeline", "VIDEO", "--window", "1", "--out", "OUT/t", "--no-plot"],
    "watch": ["watch", "VIDEO", "--no-realtime", "--window", "1"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_gives_the_encoder_the_words(command, ckpt, clip, tmp_path, encoded, capsys):
    model = ["--model", str(ckpt), "--dtype", "fp32"]
    if command == "classify --index":
        assert main(["index", str(clip), "--out", str(tmp_path / "idx"), *model]) == 0
        encoded.clear()
    argv = [a.replace("VIDEO", str(clip)).replace("INDEX", str(tmp_path / "idx")).replace("OUT", str(tmp_path))
            for a in COMMANDS[command]]
    if command != "classify --index":
        argv += model
    capsys.readouterr()
    assert main([*argv, "--labels", LIST]) == 0
    assert builtin_labels(LIST) in encoded, encoded
    raw = set(builtin_classes(LIST)) - set(builtin_labels(LIST))
    assert not any(raw & set(call) for call in encoded)
    if command.startswith("classify"):
        (record,) = json_lines(capsys.readouterr().out)
        assert sorted(r["label"] for r in record["results"]) == sorted(builtin_labels(LIST))


def test_a_typo_names_the_builtin_lists_and_the_close_one(capsys, tmp_path):
    video = make_video(tmp_path / "v.mp4")
    assert main(["classify", str(video), "--labels", "k401"]) == 1
    assert capsys.readouterr().err.strip() == (
        "actionclip: error: --labels k401: no such labels file, and not a built-in class list "
        "(built-in: ucf101, hmdb51, k400, k600); did you mean 'k400'?")
    assert main(["classify", str(video), "--labels", str(tmp_path / "mine.txt")]) == 1
    assert capsys.readouterr().err.strip() == (
        f"actionclip: error: --labels {tmp_path / 'mine.txt'}: no such labels file, and not a built-in "
        "class list (built-in: ucf101, hmdb51, k400, k600)")

