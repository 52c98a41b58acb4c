"""The model registry: entries are consistent with their URLs and the published facts."""

from __future__ import annotations

import dataclasses
import re
from pathlib import PurePosixPath
from urllib.parse import urlparse

import pytest

from actionclip.errors import UsageError
from actionclip.loading.registry import DEFAULT_MODEL, MODELS, ModelSpec, get_spec, list_models

EXPECTED = {  # name: (arch, frames, fusion, K400 top-1 as published by mmaction2, format)
    "vit-b-32-8f": ("ViT-B/32", 8, "Transf", 77.6, "mmaction2"),
    "vit-b-16-8f": ("ViT-B/16", 8, "Transf", 80.3, "mmaction2"),
    "vit-b-16-16f": ("ViT-B/16", 16, "Transf", 81.1, "mmaction2"),
    "vit-b-16-32f": ("ViT-B/16", 32, "Transf", 81.3, "mmaction2"),
    "clip-vit-b-32": ("ViT-B/32", 8, "meanP", None, "openai-clip"),
    "clip-vit-b-16": ("ViT-B/16", 8, "meanP", None, "openai-clip"),
    "clip-vit-l-14": ("ViT-L/14", 8, "meanP", None, "openai-clip"),
}


def test_registry_holds_exactly_the_expected_models():
    # The other families' entries (ViFi-CLIP, Open-VCLIP, FROSTER, ...) are checked in their own test files.
    assert [name for name, spec in MODELS.items() if spec.family == "actionclip"] == list(EXPECTED)
    assert DEFAULT_MODEL == "vit-b-32-8f"
    assert list_models()[0].name == DEFAULT_MODEL
    assert [s.name for s in list_models()] == list(MODELS)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_entry_facts(name):
    spec = MODELS[name]
    assert spec.name == name
    assert (spec.arch, spec.frames, spec.fusion, spec.k400_top1, spec.format) == EXPECTED[name]
    url = urlparse(spec.url)
    assert url.scheme == "https"
    assert PurePosixPath(url.path).name == spec.filename
    assert spec.description and spec.source.startswith("https://")
    if spec.sha256 is not None:
        assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
    if spec.size_bytes is not None:
        assert spec.size_bytes > 100_000_000  # full-size B/32 and B/16 checkpoints
    assert spec.licence and not spec.manual


@pytest.mark.parametrize("name", [n for n in EXPECTED if n.startswith("vit-")])
def test_mmaction_ports_point_at_their_config_folder(name):
    spec = MODELS[name]
    patch = spec.arch.split("/")[1]
    assert spec.url == (
        "https://download.openmmlab.com/mmaction/v1.0/projects/actionclip/"
        f"actionclip_vit-base-p{patch}-res224-clip-pre_1x1x{spec.frames}_k400-rgb/{name}.pth"
    )
    assert str(spec.frames) in spec.views and "1 clip" in spec.views


@pytest.mark.parametrize("name", ["clip-vit-b-32", "clip-vit-b-16", "clip-vit-l-14"])
def test_openai_sha256_is_the_url_path_segment(name):
    spec = MODELS[name]
    assert spec.url.startswith("https://openaipublic.azureedge.net/clip/models/")
    assert spec.url.split("/")[-2] == spec.sha256


def test_spec_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        MODELS[DEFAULT_MODEL].frames = 4  # type: ignore[misc]


def test_get_spec_exact_and_case_insensitive():
    assert get_spec("vit-b-16-16f") is MODELS["vit-b-16-16f"]
    assert get_spec("ViT-B-16-16F") is MODELS["vit-b-16-16f"]


@pytest.mark.parametrize(
    "typo,suggestion", [("vit-b-32-8", "vit-b-32-8f"), ("vit-b16-32f", "vit-b-16-32f"), ("clip-vit-b32", "clip-vit-b-32")]
)
def test_unknown_name_suggests_and_lists(typo, suggestion):
    with pytest.raises(UsageError) as err:
        get_spec(typo)
    msg = str(err.value)
    assert repr(typo) in msg and f"did you mean '{suggestion}'" in msg
    assert all(name in msg for name in MODELS) and "\n" not in msg


def test_unrelated_name_lists_models_without_suggestion():
    with pytest.raises(UsageError) as err:
        get_spec("resnet50")
    assert "did you mean" not in str(err.value)
    assert "known models: vit-b-32-8f" in str(err.value)


def test_injected_registry():
    spec = ModelSpec(name="tiny", url="http://x/t.pth", filename="t.pth", frames=4, fusion="meanP",
                     arch="tiny", format="mmaction2")
    assert get_spec("tiny", {"tiny": spec}) is spec
    with pytest.raises(UsageError, match="known models: tiny"):
        get_spec("vit-b-32-8f", {"tiny": spec})
