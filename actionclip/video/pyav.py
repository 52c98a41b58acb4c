"""Open a video for reading with PyAV, the same way on every PyAV release the project supports.

Every reader (file sampling in :mod:`~actionclip.video.decode`, live sources in
:mod:`~actionclip.video.stream`) opens its input here, so the differences between PyAV releases are
handled once:

* Metadata text. PyAV 11-18 decode tags as strict UTF-8, and a *stream's* tags are decoded while
  the container opens: a file whose stream title is in another encoding (one of the shared HMDB51
  clips has such a title) makes ``av.open`` itself raise ``UnicodeDecodeError``. There the call asks
  for ``metadata_errors="replace"``. PyAV 19 removed that argument (passing it is a ``TypeError``) and
  always decodes with ``surrogateescape``, which cannot fail; there it is left out.
* Errors. ``av.error.FFmpegError`` is the base class of FFmpeg's errors on every supported release
  (PyAV 17+ also raises ``av.ArgumentError``, a subclass of both it and ``ValueError``).
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any

__all__ = ["open_input", "pyav_version"]

# The first PyAV release without av.open(metadata_errors=...) (its 19.0.0 changelog, "Major").
_NO_METADATA_ERRORS = 19


@functools.lru_cache(maxsize=None)
def pyav_version() -> tuple[int, ...]:
    """PyAV's release as integers, e.g. ``(19, 0, 2)`` (a pre-release or local suffix is dropped)."""
    import av

    match = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(av.__version__))
    return tuple(int(g) for g in match.groups() if g is not None) if match else (0,)


def _open_kwargs() -> dict[str, Any]:
    return {} if pyav_version() >= (_NO_METADATA_ERRORS,) else {"metadata_errors": "replace"}


def open_input(target: str | os.PathLike | Any, *, format: str | None = None,
               options: dict[str, str] | None = None, timeout: float | None = None) -> Any:
    """``av.open(target, "r", ...)`` that never fails on metadata text (see the module notes).

    ``target`` is a path, URL, device or binary file object; ``format`` forces the demuxer;
    ``options`` are demuxer/protocol options; ``timeout`` (seconds) bounds network opens and reads.
    FFmpeg's errors propagate as ``av.error.FFmpegError`` (callers word them for the user).
    """
    import av

    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    return av.open(target, mode="r", format=format, options=options, timeout=timeout, **_open_kwargs())
