"""The README's Python examples run as written, against tiny random models placed in the cache under
the registry names they use (offline), on a generated video.

The examples leave a few names to the reader (``paths``, ``images``, ``frame_embeddings``); the test
gives them values and runs every statement of every ``python`` block unchanged, in one namespace. A
statement that asks for CUDA on a machine without it must fail with the one-line error a user gets.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def _registry_names(code: str) -> set[str]:
    from actionclip.loading.registry import MODELS

    return {name for name in re.findall(r'load\("([^"]+)"', code) if name in MODELS}


@pytest.fixture
def readme_world(tmp_path, monkeypatch):
    """Tiny checkpoints cached under the README's registry names, offline, and video.mp4 in the cwd."""
    from actionclip._dev.videos import make_test_video
    from actionclip._dev.weights import write_checkpoint
    from actionclip.loading.download import cached_path
    from actionclip.loading.registry import MODELS

    monkeypatch.setenv("ACTIONCLIP_OFFLINE", "1")
    for name in set().union(*map(_registry_names, _python_blocks())):
        spec = MODELS[name]
        path = cached_path(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_checkpoint(path, spec.format, fusion=spec.fusion, frames=spec.frames)
    monkeypatch.chdir(tmp_path)
    make_test_video(tmp_path / "video.mp4", seconds=16, size=(64, 48), fps=4)
    return tmp_path


def test_readme_has_python_examples():
    blocks = _python_blocks()
    assert blocks and "actionclip.load(" in blocks[0]


def test_every_readme_python_statement_runs(readme_world):
    import actionclip

    model_frames = {}
    namespace: dict = {"paths": [str(readme_world / "video.mp4")]}
    ran = 0
    for block in _python_blocks():
        for node in ast.parse(block).body:
            code = ast.get_source_segment(block, node)
            if "model" in namespace and "images" not in namespace:
                model = namespace["model"]
                r = model.input_resolution
                namespace["images"] = torch.randn(2, 3, r, r)
                namespace["frame_embeddings"] = torch.randn(1, model.num_frames, model.embed_dim)
                model_frames[model.name] = model.num_frames
            if "cuda" in code and not torch.cuda.is_available():
                with pytest.raises(actionclip.UsageError, match="CUDA is not available"):
                    exec(compile(ast.Module([node], []), "README.md", "exec"), namespace)
            else:
                exec(compile(ast.Module([node], []), "README.md", "exec"), namespace)
            ran += 1
    assert ran >= 15
    assert namespace["frames"].shape[:2] == (1, 8) and namespace["pixels"].shape[0] == 6
    assert model_frames  # the examples used a registry model
    assert os.path.exists("video.mp4")
