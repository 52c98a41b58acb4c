"""Library chatter stays behind ``--verbose``: what a user sees on stderr is ours.

The commands run in a fresh interpreter (as a user runs them), so what LanceDB's Rust core, Ray's C++
core worker and forked children print to the real stderr is seen, not only Python's warnings.
"""

from __future__ import annotations

import logging
import os
import re
import warnings

import pytest

from actionclip import chatter
from actionclip.cli import build_parser
from cli_support import make_video, run_cli

# What library chatter looks like: log levels and warning classes, deprecation notices.
_CHATTER = re.compile(r"warn|deprecat|traceback", re.IGNORECASE)


def _chatter_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if _CHATTER.search(line)]


def test_every_command_takes_verbose():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sub.choices
    for name, command in sub.choices.items():
        assert any("--verbose" in a.option_strings for a in command._actions), name


def test_quiet_hides_other_packages_warnings_and_restores_everything(monkeypatch):
    monkeypatch.delenv("LANCE_LOG", raising=False)
    ray_level = logging.getLogger("ray").level
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with chatter.quiet():
            assert not chatter.verbose() and chatter.library_log_level() == "ERROR"
            assert os.environ["LANCE_LOG"] == "error"
            assert logging.getLogger("ray").level == logging.ERROR
            warnings.warn_explicit("a library's notice", DeprecationWarning, "lib.py", 1, module="somelib")
            warnings.warn_explicit("our notice", UserWarning, "x.py", 1, module="actionclip.collection.store")
        assert [str(w.message) for w in seen] == ["our notice"]
        with chatter.quiet(verbose=True):
            assert chatter.verbose() and "LANCE_LOG" not in os.environ
            warnings.warn_explicit("a library's notice", DeprecationWarning, "lib.py", 1, module="somelib")
        assert [str(w.message) for w in seen][-1] == "a library's notice"
    assert "LANCE_LOG" not in os.environ and logging.getLogger("ray").level == ray_level
    assert chatter.verbose()  # as a library: nothing hidden


def test_search_prints_no_library_warnings(tmp_path, tiny_checkpoint):
    pytest.importorskip("lancedb")
    folder = tmp_path / "videos"
    make_video(folder / "a.mp4", seconds=1.0)
    make_video(folder / "b.mp4", seconds=2.0)
    out = tmp_path / "videos.index"
    built = run_cli("index", folder, "--out", out, "--model", tiny_checkpoint, "--dtype", "fp32",
                    "--window", "1", timeout=600)
    assert built.returncode == 0, built.stderr
    assert _chatter_lines(built.stderr) == []
    # LanceDB deprecated adding "_distance" to a projection implicitly: its Rust core said so on
    # every query (twice per search: videos, then moments) until the column was asked for by name.
    for verbose in ((), ("--verbose",)):
        found = run_cli("search", out, "someone running", *verbose, timeout=600)
        assert found.returncode == 0, found.stderr
        assert "videos:" in found.stdout and "moments:" in found.stdout
        assert _chatter_lines(found.stderr) == [], verbose


@pytest.mark.slow
def test_ray_index_prints_only_our_lines_unless_verbose(tmp_path, tiny_checkpoint):
    pytest.importorskip("ray.data")
    pytest.importorskip("lancedb")
    folder = tmp_path / "videos"
    for i in range(2):
        make_video(folder / f"v{i}.mp4", seconds=1.0)
    args = ["index", folder, "--model", tiny_checkpoint, "--dtype", "fp32", "--ray"]
    quiet = run_cli(*args, "--out", tmp_path / "quiet.index", timeout=900)
    assert quiet.returncode == 0, quiet.stderr
    assert _chatter_lines(quiet.stderr) == []
    assert quiet.stderr.splitlines()[-1].startswith(f"{tmp_path / 'quiet.index'}: 2 encoded")
    # The same run under --verbose shows what was hidden: LanceDB's warning in each process Ray
    # forks after lancedb was imported (the run starts Ray's own processes that way).
    loud = run_cli(*args, "--verbose", "--out", tmp_path / "loud.index", timeout=900)
    assert loud.returncode == 0, loud.stderr
    assert any("lancedb fork support" in line for line in _chatter_lines(loud.stderr)), loud.stderr
