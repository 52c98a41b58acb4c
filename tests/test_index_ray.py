"""``--ray``: a real local Ray runtime (2 CPUs) gives the index and the probabilities of the local path.

One runtime serves the module (starting one takes ~5 s here); each run starts its decoding tasks and
its encoder actor (a few seconds: they import torch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytest.importorskip("lancedb")

import actionclip  # noqa: E402
from actionclip.cli import main  # noqa: E402
from cli_support import json_lines, make_video  # noqa: E402

LABELS = ["running", "walking", "playing guitar"]


@pytest.fixture(scope="module")
def runtime():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray-videos")
    for i, seconds in enumerate((1.0, 1.5, 2.0)):
        make_video(root / f"v{i}.mp4", seconds=seconds, size=(64 + 16 * i, 48))
    (root / "broken.mp4").write_bytes(b"not a video")
    return root


def _rows(out: Path) -> dict[str, dict]:
    rows = actionclip.open_index(out).store.scan(["path", "vector", "duration"], kind="video").to_pylist()
    return {r["path"]: r for r in rows}


def test_ray_index_and_classify_equal_the_local_path(runtime, videos, tiny_checkpoint, tmp_path, capsys):
    errors = []
    local = actionclip.index([videos], tmp_path / "local", model=str(tiny_checkpoint), dtype="fp32")
    remote = actionclip.index([videos], tmp_path / "ray", model=str(tiny_checkpoint), dtype="fp32", ray=True,
                              on_error=lambda name, exc: errors.append((name, str(exc))))
    assert remote.report.encoded == local.report.encoded == 3
    assert [Path(name).name for name, _ in errors] == ["broken.mp4"]  # reported, the run went on
    a, b = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert sorted(a) == sorted(b)
    for path in a:
        np.testing.assert_allclose(b[path]["vector"], a[path]["vector"], atol=1e-5)
        assert b[path]["duration"] == pytest.approx(a[path]["duration"])

    good = [str(p) for p in sorted(videos.glob("v*.mp4"))]
    text = [arg for label in LABELS for arg in ("--text", label)]
    common = [*good, *text, "--model", str(tiny_checkpoint), "--dtype", "fp32", "--json"]
    capsys.readouterr()
    assert main(["classify", *common]) == 0
    plain = json_lines(capsys.readouterr().out)
    assert main(["classify", *common, "--ray"]) == 0
    on_ray = json_lines(capsys.readouterr().out)
    assert [r["video"] for r in on_ray] == [r["video"] for r in plain] == good  # input order kept
    for x, y in zip(plain, on_ray):
        assert [r["label"] for r in x["results"]] == [r["label"] for r in y["results"]]
        np.testing.assert_allclose([r["prob"] for r in y["results"]], [r["prob"] for r in x["results"]], atol=1e-5)


def test_ray_index_embeds_the_moments_of_the_local_path(runtime, videos, tiny_checkpoint, tmp_path):
    """``window`` on Ray: the encoder actors embed each video's moments; the index holds the same rows
    (videos and moments: path, start, end, vector) as the local path's."""
    common = dict(model=str(tiny_checkpoint), dtype="fp32", window=1.0, stride=0.5)
    local = actionclip.index([videos], tmp_path / "local", **common)
    errors = []
    remote = actionclip.index([videos], tmp_path / "ray", ray=True, **common,
                              on_error=lambda name, exc: errors.append(Path(name).name))
    assert errors == ["broken.mp4"]
    assert remote.report.encoded == local.report.encoded == 3
    assert remote.report.windows == local.report.windows >= 6  # 1.0, 1.5, 2.0 s: at least 1 + 2 + 3

    def rows(out: Path) -> dict[tuple, dict]:
        table = actionclip.open_index(out).store.scan(["path", "kind", "start", "end", "vector"])
        return {(r["path"], r["kind"], round(r["start"], 6), round(r["end"], 6)): r for r in table.to_pylist()}

    a, b = rows(tmp_path / "local"), rows(tmp_path / "ray")
    assert sorted(a) == sorted(b)
    assert sum(kind == "window" for _, kind, _, _ in a) == local.report.windows
    for key in a:
        np.testing.assert_allclose(b[key]["vector"], a[key]["vector"], atol=1e-5)


def test_ray_workers_import_the_drivers_package_from_any_folder(videos, tiny_checkpoint, tmp_path):
    """``actionclip index --ray`` run, as the console script runs it, from a folder that holds an
    ``actionclip/`` directory of its own (the folder a repository was cloned into): Ray puts that folder
    first on its workers' path, and before the fix they imported it instead of the driver's package."""
    import os
    import subprocess
    import sys

    cwd = tmp_path / "clones"
    (cwd / "actionclip").mkdir(parents=True)
    (cwd / "actionclip" / "__init__.py").write_text("raise ImportError('the decoy actionclip/ was imported')\n")
    launcher = tmp_path / "bin" / "actionclip"  # like pip's console script: its own folder, not cwd, is sys.path[0]
    launcher.parent.mkdir()
    launcher.write_text("import sys\nfrom actionclip.cli import main\nsys.exit(main())\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    out = tmp_path / "ray.index"
    proc = subprocess.run([sys.executable, str(launcher), "index", str(videos / "v0.mp4"), str(videos / "v1.mp4"),
                           "--out", str(out), "--model", str(tiny_checkpoint), "--dtype", "fp32", "--ray"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "decoy" not in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(actionclip.open_index(out)) == 2
