"""A missing optional extra is one line naming what needs it and the install command, the same
sentence for every extra (:mod:`actionclip.extras`), before any work - never a traceback.

Each case runs a real interpreter in which the extra's module cannot be imported (``sys.modules[name]
= None`` makes ``import name`` raise ``ImportError``, as on an install without the package).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from cli_support import REPO_ROOT, make_video

CASES = {
    # id: (modules made unimportable, argv (VIDEO, DIR filled in), the extra the line must name)
    "bench without onnx": (["onnx"], ["bench", "--model", "tiny", "--no-hf"], "bench"),
    "bench without onnxruntime": (["onnxruntime"], ["bench", "--model", "tiny", "--no-hf"], "bench"),
    "bench without transformers": (["transformers"], ["bench", "--model", "tiny", "--no-onnx"], "bench"),
    "classify --backend onnx without onnxruntime":
        (["onnxruntime"], ["classify", "VIDEO", "-t", "a", "-t", "b", "--backend", "onnx", "-m", "DIR"], "onnx"),
    "export without onnx": (["onnx"], ["export", "tiny-model", "--onnx", "DIR/out"], "onnx"),
    "export --int8 without onnxruntime": (["onnxruntime"], ["export", "tiny-model", "--onnx", "DIR/out", "--int8"], "onnx"),
    "index without lancedb": (["lancedb"], ["index", "VIDEO", "-o", "DIR/db"], "index"),
    "serve without uvicorn": (["uvicorn"], ["serve", "--port", "0"], "serve"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_missing_extra_is_one_install_line(case, tmp_path):
    blocked, argv, extra = CASES[case]
    video = make_video(tmp_path / "clip.mp4")
    argv = [a.replace("VIDEO", str(video)).replace("DIR", str(tmp_path)) for a in argv]
    code = (f"import sys\nfor name in {blocked!r}: sys.modules[name] = None\n"
            f"from actionclip.cli import main\nsys.exit(main({argv!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("actionclip: error: ")
    assert f"which is not installed: pip install \"actionclip[{extra}]\"" in lines[0], lines[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "db").exists()


def test_require_names_every_missing_package_once(monkeypatch):
    from actionclip import extras
    from actionclip.errors import UsageError

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UsageError) as err:
        extras.require("ray", "running on Ray")
    assert str(err.value) == 'running on Ray needs ray[data], which is not installed: pip install "actionclip[ray]"'
    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(UsageError) as err:
        extras.require("onnx", "export", alternative="or skip it")
    assert str(err.value) == 'export needs onnx, onnxruntime, which are not installed: pip install "actionclip[onnx]" (or skip it)'
    extras.require("index", "video indexes")  # installed here: no error
