"""Shared pytest fixtures.

``shared_data`` gives ``../shared/data`` (real clips and class lists) and skips the test cleanly when
a clone has no shared/ beside it. ``tiny_checkpoints`` writes tiny random checkpoints in every real
format once per session.
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
