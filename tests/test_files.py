"""actionclip.files: the one atomic write every output goes through."""

from __future__ import annotations

import os
import stat
import threading

import numpy as np
import pytest

from actionclip.errors import OutputError, UsageError
from actionclip.files import atomic_path, check_writable, umask_mode, write_bytes, write_text


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set a umask for the test, restore it after."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(saved)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_files_follow_the_umask_not_mkstemps_0600(tmp_path, umask, mask):
    umask(mask)
    path = write_text(tmp_path / "out.json", "{}\n")
    assert _mode(path) == 0o666 & ~mask == umask_mode()


def test_timeline_outputs_are_readable_by_colleagues(tmp_path, umask):
    """The defect of issue 9: timeline's CSV/JSON came out 0600 (a mkstemp file renamed into place)."""
    from actionclip.temporal.result import TimelineResult
    from actionclip.temporal.segments import find_segments

    umask(0o022)
    starts, ends = np.arange(4.0), np.arange(4.0) + 1
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8]])
    segments = find_segments(starts, ends, scores, ["a", "b"])
    result = TimelineResult("v.mp4", ["a", "b"], starts, ends, scores, scores, segments,
                            {"threshold": 0.5, "score": "independent"}, {})
    paths = result.save(tmp_path / "t", plot=True)
    assert len(paths) == 5
    assert {_mode(p) for p in paths.values()} == {0o644}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_concurrent_writers_never_share_a_temporary_file(tmp_path):
    """Two runs writing the same target at once: each has its own temporary name; the target ends up
    whole (one writer's content, never a mix) and no temporary file is left."""
    target = tmp_path / "result.txt"
    names, inside = [], threading.Barrier(2, timeout=10)

    def writer(text: str) -> None:
        with atomic_path(target) as tmp:
            names.append(tmp)
            tmp.write_text(text * 10000)
            inside.wait()  # both temporary files exist at this point

    threads = [threading.Thread(target=writer, args=(c,)) for c in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 2 and all(n.parent == tmp_path and n.suffix == ".txt" for n in names)
    assert target.read_text() in ("a" * 10000, "b" * 10000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = write_text(tmp_path / "keep.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("the writer failed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_unwritable_places_are_one_line_naming_the_target(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=r"file/out\.txt: cannot write \(") as err:
        write_bytes(blocker / "out.txt", b"data")
    assert "\n" not in str(err.value) and isinstance(err.value, UsageError)
    with pytest.raises(OutputError, match="is a directory"):
        check_writable(tmp_path)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(OutputError, match="no write permission"):
            check_writable(locked / "x.json")
    # Checking creates nothing: a run that fails after the check leaves no empty folder behind.
    assert check_writable(tmp_path / "new" / "deeper" / "x.json") == tmp_path / "new" / "deeper" / "x.json"
    assert not (tmp_path / "new").exists()
    with pytest.raises(OutputError, match=r"file/sub/x\.json: cannot write \(.*file is not a folder\)"):
        check_writable(blocker / "sub" / "x.json")
