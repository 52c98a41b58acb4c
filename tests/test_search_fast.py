"""``actionclip search`` without the whole model: the text side alone, torch-free, memory-mapped.

The numpy text side is checked against the torch model's own ``encode_labels`` on random
checkpoints in each format it reads; models it must not stand in for fall back to the whole model;
the restricted unpickler refuses anything but tensors; a search in a fresh process imports no torch
and ranks as the whole model does; a repeated query is read from the disk cache, not encoded.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lancedb")

from cli_support import REPO_ROOT, make_video, run_cli  # noqa: E402

from actionclip.collection.text_side import TextSide, read_torch_zip, text_side  # noqa: E402

LABELS = ["someone slipping on stairs", "playing guitar", "a very long description of an action " * 8]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fast-videos")
    make_video(root / "a.mp4", seconds=1.0)
    make_video(root / "b.mp4", seconds=2.0)
    return root


def _record(path: Path, model) -> dict:
    from actionclip.collection.model_ref import describe

    return {**describe(model, path), "dtype": "fp32"}


@pytest.mark.parametrize("fmt, fp16", [("actionclip", False), ("actionclip", True), ("mmaction2", False)])
def test_the_text_side_embeds_as_the_whole_model(tmp_path, fmt, fp16):
    import actionclip
    from actionclip._dev.weights import write_checkpoint

    path = write_checkpoint(tmp_path / f"m-{fmt}.pt", format=fmt, fp16=fp16, seed=2)
    model = actionclip.load(path, dtype="fp32", device="cpu")
    side = text_side(_record(path, model))
    assert isinstance(side, TextSide)
    weight = side.w["ln_final.weight"]
    assert not weight.flags.owndata and not weight.flags.writeable  # a view of the file, not a copy
    for templates in (None, ["{}"], ["a video of {}.", "someone {} here"]):
        got = side.encode_labels(LABELS, templates)
        want = model.encode_labels(LABELS, templates).numpy()
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


def test_models_it_cannot_stand_in_for_load_whole(tmp_path):
    import os

    import actionclip
    from actionclip._dev.weights import write_checkpoint

    path = write_checkpoint(tmp_path / "m.pt")
    model = actionclip.load(path, dtype="fp32", device="cpu")
    record = _record(path, model)
    assert text_side(record) is not None
    assert text_side({**record, "dtype": "bf16"}) is None  # the whole model computes in bf16: so must the query
    assert text_side(record, dtype="bf16") is None
    assert text_side(record, device="cuda") is None
    assert text_side({**record, "class": "actionclip.model.xclip.XCLIP"}) is None  # text depends on the video
    assert text_side({**record, "source": None}) is None
    jit = write_checkpoint(tmp_path / "jit.pt", format="openai-jit")
    assert text_side({**record, "source": str(jit), "fingerprint": None}) is None
    os.utime(path, ns=(1, 1))  # another file now: the whole-model path explains it in one line
    assert text_side(record) is None


def test_the_unpickler_refuses_anything_but_tensors(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    target = tmp_path / "evil.pt"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as z:
        z.writestr("evil/data.pkl", pickle.dumps({"model_state_dict": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        read_torch_zip(target)
    assert text_side({"class": "actionclip.model.actionclip.ActionCLIP", "dtype": "fp32", "source": str(target),
                      "fingerprint": None, "config": {}}) is None


def test_search_in_a_fresh_process_imports_no_torch(videos, tiny_checkpoint, tiny_model, tmp_path):
    out = tmp_path / "idx"
    done = run_cli("index", videos, "--out", out, "--model", tiny_checkpoint, "--dtype", "fp32", "--window", "1")
    assert done.returncode == 0, done.stderr
    code = ("import json, sys\nfrom actionclip.cli import main\n"
            f"code = main(['search', {str(out)!r}, 'playing guitar', '--json', '-k', '3'])\n"
            "print(json.dumps({'torch': 'torch' in sys.modules, 'code': code}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert json.loads(lines[-1]) == {"torch": False, "code": 0}
    hits = [json.loads(line) for line in lines[:-1]]
    import actionclip

    whole = actionclip.open_index(out, model=tiny_model).search("playing guitar", top_k=3)
    assert [(h["video"], h["kind"], h.get("start")) for h in hits] == \
        [(h.video, h.kind, h.start if h.kind == "window" else None) for h in whole]
    np.testing.assert_allclose([h["score"] for h in hits], [h.score for h in whole], rtol=0, atol=1e-6)


def test_a_repeated_query_is_read_from_the_disk_cache(videos, tiny_checkpoint, tmp_path, monkeypatch):
    import actionclip

    out = tmp_path / "idx"
    assert run_cli("index", videos, "--out", out, "--model", tiny_checkpoint, "--dtype", "fp32").returncode == 0
    calls: list[int] = []
    encode = TextSide.encode_tokens
    monkeypatch.setattr(TextSide, "encode_tokens", lambda self, ids: calls.append(len(ids)) or encode(self, ids))
    first = actionclip.open_index(out).search("someone dancing", top_k=2)
    assert calls and sum(calls) == len(actionclip.open_index(out).text_side().templates)
    calls.clear()
    again = actionclip.open_index(out).search("someone dancing", top_k=2)  # a new "process": a new Index
    assert calls == [] and again == first
    actionclip.open_index(out).search("someone cooking", top_k=2)
    assert calls
