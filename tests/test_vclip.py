"""ViFi-CLIP, Open-VCLIP and FROSTER through the generic commands: formats recognised, variants we
do not run refused in one line, registry entries that point at a manual fetch, and classify,
timeline, watch, eval, train and export on generated videos with tiny models of each family.

Parity with the originals is tests/test_vclip_parity.py. OpenAI's weights (ViFi-CLIP's token
embedding, Open-VCLIP's text tower and interpolation) come from the registry's ``clip-vit-b-16``; in-process tests
hand the families a tiny random CLIP instead, and one subprocess test checks the real message when
it cannot be fetched.
"""

from __future__ import annotations

import json
import pickle
import re
import sys
from pathlib import Path

import pytest
import torch

import actionclip
from actionclip._dev.vclip_weights import write_openvclip, write_vificlip
from actionclip._dev.weights import random_clip_state_dict
from actionclip.cli import main
from actionclip.errors import CheckpointError, UsageError
from actionclip.loading import vclip_families
from actionclip.loading.checkpoints import read_checkpoint
from actionclip.loading.load import FAMILIES
from actionclip.loading.registry import MODELS
from cli_support import error_lines, make_video, run_cli

LABELS = ["juggling", "swimming", "Abseiling: descending a rock face on a rope"]
FAMILY_FILES = ["vificlip", "openvclip", "froster"]


@pytest.fixture(scope="module")
def openai_sd():
    return random_clip_state_dict("tiny", seed=123)


@pytest.fixture(autouse=True)
def _openai_from_memory(monkeypatch, openai_sd):
    monkeypatch.setattr(vclip_families, "openai_weights", lambda clip_sd, why: openai_sd)


@pytest.fixture(scope="module")
def files(tmp_path_factory, openai_sd):
    root = tmp_path_factory.mktemp("vclip-files")
    return {
        "vificlip": write_vificlip(root / "vifi.pth", openai_sd, frames=8),
        "openvclip": write_openvclip(root / "openvclip.pth", seed=2),
        "froster": write_openvclip(root / "froster.pth", seed=3, froster=True),
    }


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("vclip-video") / "clip.mp4", seconds=3.0, size=(64, 48), fps=8)


# --- formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,family,cls", [("vificlip", "vificlip", "ActionCLIP"), ("openvclip", "openvclip", "OpenVCLIP"),
                                            ("froster", "froster", "FROSTER")])
def test_format_and_family_are_detected_from_content(files, fmt, family, cls):
    if fmt == "vificlip":  # the file references yacs' class, as the real ones do
        with pytest.raises(pickle.UnpicklingError, match="yacs"):
            torch.load(files[fmt], weights_only=True)
    yacs_loaded = "yacs" in sys.modules
    ckpt = read_checkpoint(files[fmt])
    # the yacs config object inside ViFi-CLIP's files is read as inert data: nothing of yacs is imported
    assert ("yacs" in sys.modules) == yacs_loaded
    assert ckpt.family == family and ckpt.fusion_type == "meanP" and family in FAMILIES
    model = actionclip.load(files[fmt], dtype="fp32")
    assert type(model).__name__ == cls
    expected_frames = 32 if family == "vificlip" else 8
    assert model.num_frames == expected_frames
    assert model.frame_independent == (family == "vificlip")


def test_their_templates_and_preprocessing_are_the_defaults(files):
    vifi, ovc, fro = (actionclip.load(files[f], dtype="fp32") for f in FAMILY_FILES)
    assert vifi.templates == ["a photo of a {}."]
    assert len(ovc.templates) == 28 and ovc.templates[0] == "a photo of {}."
    assert ovc.templates[-1] == "a demonstration of a person practicing {}."
    assert fro.templates == ovc.templates + ["{}"]
    for model in (ovc, fro):
        prep = model.config.preprocessing
        assert (prep.resize_ratio, prep.mean) == (1.0, (0.48145466, 0.4578275, 0.40821073))
    assert fro.prompts(["Abseiling: going down a rope", "run"], ["a photo of {}.", "{}"]) == [
        "a photo of Abseiling. Abseiling: going down a rope", "a photo of run. run",
        "Abseiling: going down a rope", "run"]


def _refusal(path) -> str:
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def test_unsupported_variants_are_refused_in_one_line(tmp_path, openai_sd):
    prompt = write_vificlip(tmp_path / "prompted.pth", openai_sd, prompt_learning=True)
    assert re.search(r"prompt-learning .*prompt_learner\.ctx", _refusal(prompt))
    other = write_openvclip(tmp_path / "stadapt.pth", training=True, temporal="stadapt_zeroinit")
    assert "'stadapt_zeroinit'; only Open-VCLIP's neighbour attention" in _refusal(other)
    state = torch.load(write_openvclip(tmp_path / "msg.pth"), weights_only=True)
    state["model_state"]["model.visual.transformer.resblocks.0.message_fc.weight"] = torch.zeros(2, 2)
    torch.save(state, tmp_path / "msg.pth")
    assert re.search(r"extra modules .*message_fc", _refusal(tmp_path / "msg.pth"))
    state["model_state"] = {k: v for k, v in state["model_state"].items() if "message" not in k}
    state["model_state"]["prompt_embed"] = torch.zeros(8, 128)
    torch.save(state, tmp_path / "prompted-ovc.pth")
    assert "'prompt_embed'" in _refusal(tmp_path / "prompted-ovc.pth")


def test_a_frame_dependent_model_has_no_per_frame_encoder(files):
    model = actionclip.load(files["openvclip"], dtype="fp32")
    with pytest.raises(UsageError, match="encode whole clips"):
        model.encode_image(torch.zeros(2, 3, 32, 32))


# --- registry and fetching ----------------------------------------------------------------------

NEW_FAMILIES = {"vificlip", "openvclip", "froster"}


@pytest.mark.parametrize("name", [n for n, s in MODELS.items() if s.family in NEW_FAMILIES])
def test_manual_entries_say_where_to_fetch(name):
    spec = MODELS[name]
    assert spec.url == "" and spec.manual and "https://" in spec.manual and spec.licence
    assert spec.family in FAMILIES and spec.filename.endswith(".pth")
    assert spec.zero_shot or spec.k400_top1  # a published figure to choose by
    assert set(spec.zero_shot) <= {"ucf101", "hmdb51", "k600"}
    assert all(0 < v < 100 for v in spec.zero_shot.values())


def test_issue_table_figures():
    assert dict(MODELS["vificlip-b16-k400"].zero_shot) == {"ucf101": 76.8, "hmdb51": 51.3, "k600": 71.2}
    assert dict(MODELS["openvclip-b16"].zero_shot) == {"ucf101": 83.4, "hmdb51": 53.9, "k600": 73.0}
    assert dict(MODELS["froster-b16"].zero_shot) == {"ucf101": 84.8, "hmdb51": 54.8, "k600": 74.8}
    assert MODELS["vificlip-b16-k400"].frames == 32 and MODELS["froster-b16"].frames == 8


def test_manual_model_by_name_is_one_line_naming_the_source_and_path(video):
    proc = run_cli("classify", video, "--model", "froster-b16", "-t", "a", "-t", "b", timeout=60)
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("actionclip: error: model 'froster-b16' cannot be downloaded automatically")
    assert "drive.google.com" in line and "--model PATH" in line and "froster-b16.pth" in line


def test_a_file_saved_under_the_entry_name_loads_by_name(files, monkeypatch):
    from actionclip.loading.download import cached_path

    target = cached_path("openvclip-b16")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(files["openvclip"].read_bytes())
    monkeypatch.setenv("ACTIONCLIP_OFFLINE", "1")
    model = actionclip.load("openvclip-b16", dtype="fp32")
    assert model.name == "openvclip-b16" and model.family == "openvclip"


def test_offline_without_openai_weights_says_what_to_fetch(files, video, tmp_path):
    """The real fetch (no monkeypatch in a subprocess): offline, an empty cache, one line. The tiny
    file gets a ViT-B/16 patch embedding, which is all the look-up of OpenAI's weights reads."""
    from actionclip.loading.weights_io import load_pickle

    raw = load_pickle(files["vificlip"])
    raw["model"]["module.image_encoder.conv1.weight"] = torch.zeros(768, 3, 16, 16)
    raw["config"] = None
    torch.save(raw, tmp_path / "vifi-b16-shaped.pth")
    proc = run_cli("classify", video, "--model", tmp_path / "vifi-b16-shaped.pth", "-t", "a", "-t", "b",
                   env={"ACTIONCLIP_OFFLINE": "1"}, timeout=120)
    assert proc.returncode == 1
    [line] = error_lines(proc.stderr)
    assert "token embedding" in line and "'clip-vit-b-16'" in line
    assert "ViT-B-16.pt" in line and "offline" in line


# --- commands ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FAMILY_FILES)
def test_classify_timeline_watch_through_the_generic_code(files, video, fmt, capsys, tmp_path):
    path = str(files[fmt])
    args = [x for label in LABELS for x in ("-t", label)]
    assert main(["classify", str(video), "--model", path, "--dtype", "fp32", "--frames", "4", "--json", *args]) == 0
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    model = actionclip.load(path, dtype="fp32", frames=4)
    expected = model.classify(str(video), LABELS)
    assert [r["label"] for r in record["results"]] == [label for label, _ in expected]
    assert [r["prob"] for r in record["results"]] == pytest.approx([p for _, p in expected], abs=1e-5)

    assert main(["timeline", str(video), "--model", path, "--dtype", "fp32", "--text", "juggling", "--text",
                 "swimming", "--window", "1", "--stride", "0.5", "--frames", "4", "--out", str(tmp_path / "t"),
                 "--no-plot", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["stats"]["windows"] >= 4 and (tmp_path / "t.windows.csv").is_file()

    from actionclip.temporal.live import watch

    updates = list(watch(model, str(video), LABELS, window=1.0, frames=4, every=0.5, realtime=False))
    assert len(updates) >= 3


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    from actionclip._dev.videos import make_test_video

    root = tmp_path_factory.mktemp("vclip-evalset")
    for label in ("run", "jump"):
        for i in range(2):
            make_test_video(root / label / f"{label}{i}.mp4", num_frames=10, size=(48, 40), fps=10)
    return root


@pytest.mark.parametrize("fmt", FAMILY_FILES)
def test_eval(files, small_set, fmt, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["eval", str(small_set), "--model", str(files[fmt]), "--out", str(out), "--quiet", "--frames", "4",
                 "--dtype", "fp32", "--workers", "0"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["evaluated"] == 4 and "top-1 accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["vificlip", "froster"])
def test_train_a_few_steps_and_reload_the_same_family(files, small_set, fmt, tmp_path):
    from actionclip.training.datasets import load_dataset
    from actionclip.training.train import TrainConfig, train

    start = actionclip.load(files[fmt], dtype="fp32", frames=2)
    result = train(start, load_dataset(small_set), tmp_path / "run",
                   TrainConfig(epochs=2, frames=2, batch_size=4, lr=1e-4, augment=False, workers=0, progress=False,
                               templates=("{}",)), log=lambda m: None)
    assert len(result.history) == 2 and all(r["loss"] > 0 for r in result.history)
    again = actionclip.load(result.last, dtype="fp32")
    assert type(again) is type(start) and again.config.templates == start.config.templates
    assert again.config.preprocessing == start.config.preprocessing
    trained = dict(result.model.clip.openai_state_dict())
    assert all(torch.equal(v, trained[k]) for k, v in again.clip.openai_state_dict().items())


def test_export_vificlip_works_and_open_vclip_is_refused_in_one_line(files, tmp_path, capsys):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    assert main(["export", str(files["vificlip"]), "--onnx", str(tmp_path / "vifi")]) == 0
    meta = json.loads(next((tmp_path / "vifi").glob("*.json")).read_text())
    assert meta["config"]["templates"] == ["a photo of a {}."] and meta["fusion"] == "meanP"
    capsys.readouterr()
    for fmt in ("openvclip", "froster"):
        assert main(["export", str(files[fmt]), "--onnx", str(tmp_path / fmt)]) == 1
        [line] = error_lines(capsys.readouterr().err)
        assert "ONNX export" in line and "neighbours" in line
        assert not list((tmp_path / fmt).glob("*.onnx"))
