"""The model registry: entries are consistent with their URLs and the published facts."""

from __future__ import annotations

import dataclasses
import re
from pathlib import PurePosixPath
from urllib.parse import urlparse

import pytest

from actionclip.errors import UsageError
from actionclip.loading.registry import DEFAULT_MODEL, MODELS, ModelSpec, get_spec, list_models


def test_default_model_comes_first():
    assert DEFAULT_MODEL == "vit-b-32-8f"  # the seed's default, kept on purpose (issue 10)
    assert list_models()[0].name == DEFAULT_MODEL
    assert [s.name for s in list_models()] == list(MODELS)


@pytest.mark.parametrize("name", list(MODELS))
def test_entry_is_consistent_with_its_source(name):
    spec = MODELS[name]
    assert spec.name == name and spec.description
    if spec.manual:  # fetched by hand: no URL to check, but it must say where
        assert not spec.url and "http" in spec.manual
        return
    if spec.hub_id:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", spec.hub_id)
        return
    url = urlparse(spec.url)
    assert url.scheme == "https"
    assert PurePosixPath(url.path).name == spec.filename
    assert spec.source.startswith("https://")
    if spec.sha256 is not None:
        assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
    if spec.size_bytes is not None:
        assert spec.size_bytes > 100_000_000  # full-size B/32 and B/16 checkpoints
    assert spec.licence and not spec.manual


@pytest.mark.parametrize("name", [n for n, s in MODELS.items() if s.format == "mmaction2"])
def test_mmaction_urls_name_the_architecture_and_frames_the_entry_claims(name):
    # The mmaction2 config folder spells out patch size and frame count: the entry must agree with it.
    spec = MODELS[name]
    folder = PurePosixPath(urlparse(spec.url).path).parent.name
    match = re.fullmatch(r"actionclip_vit-base-p(\d+)-res224-clip-pre_1x1x(\d+)_k400-rgb", folder)
    assert match, folder
    assert spec.arch == f"ViT-B/{match.group(1)}" and spec.frames == int(match.group(2))
    assert str(spec.frames) in spec.views and "1 clip" in spec.views


@pytest.mark.parametrize("name", [n for n, s in MODELS.items() if s.format == "openai-clip"])
def test_openai_sha256_is_the_url_path_segment(name):
    spec = MODELS[name]
    assert spec.url.startswith("https://openaipublic.azureedge.net/clip/models/")
    assert spec.url.split("/")[-2] == spec.sha256


@pytest.mark.parametrize("name", ["vit-b-32-8f", "vit-b-16-16f"])
def test_a_registry_name_loads_with_its_frames_and_fusion(name, tmp_path, monkeypatch):
    """A cached file under a registry name becomes a model named, framed and fused as the entry says."""
    import actionclip
    from actionclip._dev.weights import write_checkpoint
    from actionclip.loading.download import cached_path

    spec = MODELS[name]
    monkeypatch.setenv("ACTIONCLIP_OFFLINE", "1")
    path = cached_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_checkpoint(path, spec.format, fusion=spec.fusion, frames=spec.frames)
    model = actionclip.load(name, device="cpu", dtype="fp32")
    assert (model.name, model.num_frames, model.fusion_type) == (name, spec.frames, spec.fusion)
    assert model.templates == list(actionclip.TEMPLATES)


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
