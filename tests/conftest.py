"""Shared pytest fixtures, defined once for every test file (pytest finds them here; no test file
imports a fixture from another).

``shared_data`` gives ``../shared/data`` (real clips and class lists) and skips the test cleanly when
a clone has no shared/ beside it. ``tiny_checkpoint`` writes a tiny random checkpoint in the original
ActionCLIP format once per session (``ckpt`` is its path), ``tiny_model`` loads it; ``meanp_checkpoint``
is the same with mean pooling, and ``arranged`` the model of tests/timeline_support.py whose
frames' colours name labels.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ACTIONCLIP_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "clips" / "manifest.csv").is_file():
        pytest.skip(f"shared data not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """No test may touch the user's model caches (ours and the Hugging Face hub's) or the network by accident."""
    monkeypatch.setenv("ACTIONCLIP_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf-hub-cache")))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny random checkpoint in the original ActionCLIP format (Transf head, 8 frames)."""
    from actionclip._dev.weights import write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-actionclip.pt", format="actionclip")


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint):
    """The tiny checkpoint loaded (share it read-only; load your own copy to modify weights)."""
    import actionclip

    return actionclip.load(tiny_checkpoint, dtype="fp32")


@pytest.fixture
def ckpt(tiny_checkpoint) -> Path:
    """The session's tiny random checkpoint (original ActionCLIP format, Transf, 8 frames)."""
    return Path(tiny_checkpoint)


@pytest.fixture(scope="session")
def meanp_checkpoint(tmp_path_factory) -> Path:
    """A tiny random checkpoint with meanP fusion (a window's embedding is the mean of its frames')."""
    from actionclip._dev.weights import write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "meanp.pt", fusion="meanP")


@pytest.fixture(scope="module")
def arranged_model(meanp_checkpoint):
    """(model, calls): the arranged model (tests/timeline_support.py), once per test module (tests
    count its encoder calls), and its encoder-call counter."""
    from timeline_support import arrange

    import actionclip

    model = actionclip.load(meanp_checkpoint, dtype="fp32")
    return model, arrange(model)


@pytest.fixture
def arranged(arranged_model):
    """The arranged model with its encoder-call counter reset."""
    model, calls = arranged_model
    calls.update(images=0, calls=0)
    return model, calls
