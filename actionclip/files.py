"""Writing output files so that a reader never sees half of one, and a failure says which file.

Every file actionclip writes (results, timelines, plots, reports, checkpoints, exports, videos,
downloads' records) goes through :func:`atomic_path`: the content is written to a temporary name
*beside* the target (same folder, so the final rename never crosses a file system), unique per
writer (two concurrent runs never share a temporary file), flushed to disk, given the permissions a
plain ``open(path, "w")`` would give (``0o666`` minus the umask: ``mkstemp``'s private 0600 would
leave colleagues unable to read the results), then renamed over the target in one step. On any
failure the temporary file is removed and the target is left as it was. An ``OSError`` becomes one
:class:`~actionclip.errors.OutputError` line naming the target and the cause.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from actionclip.errors import OutputError

__all__ = ["atomic_path", "write_text", "write_bytes", "write_with", "check_writable", "umask_mode"]


def umask_mode() -> int:
    """The mode a newly created file gets here: ``0o666`` minus the process umask."""
    # os.umask can only be read by setting it; set it straight back (one syscall pair, no file).
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _cause(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it replaces ``path`` atomically.

    The caller writes the whole content to the yielded path (by any means: ``torch.save``,
    ``savefig``, an encoder); the file is fsync'ed, given umask permissions and renamed into place.
    The temporary name keeps ``path``'s suffix, so writers that pick a format from it still work.
    """
    target = Path(path)
    tmp: Path | None = None
    try:
        if make_parents:
            target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}",
                                    dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        yield tmp
        with open(tmp, "rb+") as fh:  # the writer may have closed its own handle without syncing
            os.fsync(fh.fileno())
        os.chmod(tmp, umask_mode())
        os.replace(tmp, target)
        tmp = None
        _sync_folder(target.parent)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write ({_cause(exc)})") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _sync_folder(folder: Path) -> None:
    # The rename is durable only once the folder's entry is on disk (POSIX); elsewhere, best effort.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_with(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """``write(tmp_path)`` then rename into place (see :func:`atomic_path`); returns ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (newlines written as given)."""
    return write_bytes(path, text.encode("utf-8"))


def check_writable(path: str | os.PathLike) -> Path:
    """Fail now, in one line, if ``path``'s folder cannot be created or written.

    For long jobs: a typo in an output path should fail before an hour of work, not after it. Nothing
    is created here (a run that fails later leaves no empty folder behind): the nearest folder that
    exists must be one this process can write into; the writer creates the missing ones.
    """
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{target}: cannot write (is a directory)")
    ancestor = target.parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"{target}: cannot write ({ancestor} is not a folder)")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"{target}: cannot write (no write permission on {ancestor})")
    return target
