"""A multipart upload streamed into a temporary file: size-limited while it streams, always deleted.

FastAPI's form parsing reads a whole body before the endpoint runs (spooling files to the system's
temporary folder), so a limit could only be checked after a 10 GB upload had been taken in. Here the
body is parsed as it arrives (python-multipart's streaming parser): the ``video`` part goes to a
temporary file in the server's temp folder, in 1 MiB writes made by a worker thread, and the upload
stops with 413 the moment it passes the limit (at once when ``Content-Length`` already says so).
Other parts are short text fields (labels, options), bounded in number and size.

:func:`receive_upload` is an async context manager: the temporary file is deleted when the block
ends, whether the request succeeded, failed, or its client went away (a disconnect raises inside
the block like any error).

Storage is checked twice: :func:`temp_dir_problem` at start-up (a server whose temp folder cannot be
written refuses to start, rather than answering every upload 500), and a disk that fills or goes away
later makes that upload one JSON line (507 when out of space, else 500), never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from actionclip.serve.problems import Problem

__all__ = ["Upload", "receive_upload", "refuse_playlists", "temp_dir_problem", "storage_problem", "FILE_FIELD"]

log = logging.getLogger("actionclip.serve")

FILE_FIELD = "video"
_FLUSH = 1 << 20  # bytes gathered before a write to disk
_MAX_FIELDS = 2000
_MAX_FIELD_BYTES = 16 * 1024


@dataclass
class Upload:
    """What a form carried: text ``fields`` (name -> values, in order) and the video file, if any."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    path: Path | None = None  #: the temporary file holding the ``video`` part
    filename: str | None = None  #: the client's name for it (a display name, never opened)
    size: int = 0  #: bytes of the ``video`` part

    def values(self, name: str) -> list[str]:
        return self.fields.get(name, [])

    def first(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None


def display_name(raw: str | None) -> str:
    """A client's file name, safe to show and log: the last path component, printable, bounded."""
    name = re.split(r"[\\/]", raw or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:200] or "upload"


def _suffix(name: str) -> str:
    from actionclip.video import VIDEO_EXTENSIONS

    suffix = Path(name).suffix.lower()
    return suffix if suffix in VIDEO_EXTENSIONS else ""


class _FormState:
    """The streaming parser's callbacks: headers of the current part, field values, file bytes."""

    def __init__(self, max_bytes: int, open_file: Callable[[str], Any]) -> None:
        self.max_bytes, self.open_file = max_bytes, open_file
        self.upload = Upload()
        self.pending = bytearray()  # file bytes not yet written
        self.error: Problem | None = None
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._name: str | None = None
        self._is_file = False
        self._value = bytearray()
        self._fields = 0

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._part_begin, "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _fail(self, status: int, message: str) -> None:
        if self.error is None:
            self.error = Problem(status, message)

    def _part_begin(self) -> None:
        self._headers.clear()
        self._name, self._is_file = None, False
        self._value.clear()

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.decode("latin-1").lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, params = parse_options_header(self._headers.get("content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        self._name = name
        self._is_file = b"filename" in params
        self._fields += 1
        if self._fields > _MAX_FIELDS:
            self._fail(413, f"too many form fields (at most {_MAX_FIELDS})")
        elif self._is_file and name != FILE_FIELD:
            self._fail(400, f"unexpected file field {name!r}: send the video as the '{FILE_FIELD}' field")
        elif not self._is_file and name == FILE_FIELD:
            self._fail(400, f"'{FILE_FIELD}' must be a file part (curl: -F {FILE_FIELD}=@clip.mp4)")
        elif self._is_file and self.upload.path is not None:
            self._fail(400, f"more than one '{FILE_FIELD}' file: send one video per request")
        elif self._is_file:
            self.upload.filename = display_name(params[b"filename"].decode("utf-8", "replace"))
            self.upload.path = self.open_file(self.upload.filename)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        if self._is_file:
            self.upload.size += end - start
            if self.upload.size > self.max_bytes:
                self._fail(413, f"upload over this server's limit of {_mebibytes(self.max_bytes)}")
                return
            self.pending += data[start:end]
        else:
            self._value += data[start:end]
            if len(self._value) > _MAX_FIELD_BYTES:
                self._fail(413, f"form field {self._name!r} longer than {_MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if self.error is None and not self._is_file and self._name is not None:
            try:
                text = self._value.decode("utf-8")
            except UnicodeDecodeError:
                self._fail(400, f"form field {self._name!r} is not UTF-8 text")
                return
            self.upload.fields.setdefault(self._name, []).append(text)


def _mebibytes(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB"


def temp_dir_problem(temp_dir: str | os.PathLike | None) -> str | None:
    """Why uploads cannot be stored in ``temp_dir`` (None: the system's temporary folder), or None
    when a file can be created and removed there (the probe is what every upload will do)."""
    try:
        fd, probe = tempfile.mkstemp(prefix="actionclip-probe-", dir=temp_dir)
    except OSError as exc:  # also tempfile's "no usable temporary directory"
        return exc.strerror or str(exc)
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError as exc:
        return f"a file created there cannot be removed: {exc.strerror or exc}"
    return None


_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def storage_problem(exc: OSError) -> Problem:
    """An upload the server could not store: 507 when its disk is full, else 500; one line that names
    no server path (the log gets the cause, also in one line)."""
    cause = exc.strerror or type(exc).__name__
    log.warning("actionclip serve: cannot store an upload in the temp folder (%s)", cause)
    status = 507 if exc.errno in _FULL else 500
    return Problem(status, f"the server cannot store the upload ({cause}); try again later")


@contextlib.asynccontextmanager
async def receive_upload(request: Any, *, max_bytes: int, temp_dir: str | os.PathLike | None,
                         pool: Any) -> AsyncIterator[Upload]:
    """Parse ``request``'s multipart body as it streams (see the module notes) and yield the
    :class:`Upload`; its temporary file is deleted when the block ends, however it ends.

    Raises:
        Problem: 400 for a body that is not a usable form, 413 past ``max_bytes``.
    """
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise Problem(400, f"expected a multipart/form-data body with a '{FILE_FIELD}' file and 'labels' fields")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + 1024 * 1024:  # + room for the fields
        raise Problem(413, f"upload of {_mebibytes(int(declared))} over this server's limit of {_mebibytes(max_bytes)}")

    handle: list[Any] = []

    def open_file(name: str) -> Path:
        fd, path = tempfile.mkstemp(prefix="actionclip-upload-", suffix=_suffix(name), dir=temp_dir)
        handle.append(os.fdopen(fd, "wb"))
        return Path(path)

    state = _FormState(max_bytes, open_file)
    parser = MultipartParser(boundary, state.callbacks())

    async def flush(force: bool = False) -> None:
        if state.pending and (force or len(state.pending) >= _FLUSH):
            data = bytes(state.pending)
            state.pending.clear()
            await pool.run(handle[0].write, data)

    try:
        try:
            async for chunk in request.stream():
                parser.write(chunk)
                if state.error is not None:
                    raise state.error
                await flush()
            parser.finalize()
            if state.error is not None:
                raise state.error
            await flush(force=True)
            if handle:
                await pool.run(handle[0].close)
        except MultipartParseError as exc:
            raise Problem(400, f"malformed multipart body ({exc})") from None
        except OSError as exc:  # creating, writing or closing the temporary file
            raise storage_problem(exc) from None
        yield state.upload
    finally:
        for f in handle:
            with contextlib.suppress(OSError):
                f.close()
        if state.upload.path is not None:
            with contextlib.suppress(OSError):
                state.upload.path.unlink()


# What FFmpeg would follow to other files or URLs: an HLS or DASH playlist, a concat script. An
# upload must never make the server open a path or URL of the uploader's choosing.
_REFERENCING = (b"#EXTM3U", b"ffconcat", b"<?xml", b"<MPD")


def refuse_playlists(path: Path, name: str) -> None:
    """Raise 400 when the uploaded file is a playlist or script naming other files (see above)."""
    with open(path, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(_REFERENCING) or b"<MPD" in head:
        raise Problem(400, f"{name}: a playlist or script that refers to other files, not a video")
