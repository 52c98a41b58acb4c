"""Live video sources for ``actionclip watch``: webcams, network streams, files at real time, stdin.

:func:`parse_source` turns what the user typed into a :class:`Source`:

=============================  ===========================================================
``0``, ``1``, ...              webcam by index (``/dev/videoN`` via v4l2 on Linux,
                               avfoundation on macOS, ``video=N`` via dshow on Windows)
``/dev/video0``                a V4L2 device (Linux)
``rtsp://``, ``rtsps://``      RTSP camera (TCP transport unless ``options`` say otherwise)
``http(s)://``, ``udp://``,    any network stream FFmpeg reads (MPEG-TS, MJPEG, HLS, ...)
``tcp://``, ``rtmp://``, ...
``-``                          a stream piped to standard input (``ffmpeg ... -f mpegts - |``)
a file path                    played at its real speed, as if it were a camera
a binary file object           read as a stream (like ``-``)
=============================  ===========================================================

:class:`FrameStream` iterates :class:`StreamFrame` objects, optionally thinned to a frame rate, on a
*source clock* (seconds) that keeps running across reconnects. When a network or device stream drops
(error or end of stream) it reconnects with exponential back-off; ``max_retries`` consecutive failed
attempts end it with a :class:`~actionclip.errors.VideoError`.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from actionclip.errors import UsageError, VideoError

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
#: live sources: probe about a second of stream instead of FFmpeg's default 5 s / 5 MB, which on a
#: pipe or camera means waiting that long before the first frame
_LIVE_PROBE = {"analyzeduration": "1000000", "probesize": "1000000"}
#: demuxer options that make network sources behave for live viewing, per URL scheme
_NETWORK_DEFAULTS = {
    "rtsp": {"rtsp_transport": "tcp"},
    "rtsps": {"rtsp_transport": "tcp"},
    "udp": {"overrun_nonfatal": "1", "fifo_size": "278876"},
}


@dataclass
class Source:
    """A parsed live source: what to open and how to treat its end."""

    kind: str  #: "device", "url", "file", "stdin" or "fileobj"
    target: Any  #: what av.open gets: a path/URL string or a binary file object
    name: str  #: shown in messages
    format: str | None = None  #: FFmpeg demuxer, when it must be forced (v4l2, avfoundation, ...)
    options: dict[str, str] = field(default_factory=dict)  #: demuxer options

    @property
    def live(self) -> bool:
        """Devices and network streams can be reopened after a drop; files and pipes cannot."""
        return self.kind in ("device", "url")


def parse_source(source: Any, *, format: str | None = None, options: dict[str, str] | None = None) -> Source:
    """Recognise ``source`` (see the module docstring); ``format``/``options`` override the defaults."""
    opts = dict(options or {})
    if hasattr(source, "read"):
        return Source("fileobj", _PipeReader(source), str(getattr(source, "name", "<stream>")), format,
                      {**_LIVE_PROBE, **opts})
    if isinstance(source, int) or (isinstance(source, str) and source.strip().isdigit()):
        index = int(source)
        if sys.platform.startswith("linux"):
            return Source("device", f"/dev/video{index}", f"/dev/video{index}", format or "v4l2", opts)
        if sys.platform == "darwin":
            opts.setdefault("framerate", "30")
            return Source("device", str(index), f"camera {index}", format or "avfoundation", opts)
        if sys.platform.startswith("win"):
            return Source("device", f"video={index}", f"camera {index}", format or "dshow", opts)
        raise UsageError(f"camera {index}: webcams by index are not supported on {sys.platform}; give a device path")
    text = os.fspath(source)
    if text == "-":
        return Source("stdin", _PipeReader(sys.stdin.buffer, use_fd=True), "<stdin>", format, {**_LIVE_PROBE, **opts})
    if _URL.match(text):
        scheme = text.split(":", 1)[0].lower()
        merged = {**_LIVE_PROBE, **_NETWORK_DEFAULTS.get(scheme, {}), **opts}
        if scheme == "file":
            return parse_source(text[len("file://"):], format=format, options=options)
        return Source("url", text, _redact(text), format, merged)
    if text.startswith("/dev/video"):
        return Source("device", text, text, format or "v4l2", opts)
    path = Path(text).expanduser()
    if not path.exists():
        raise VideoError(f"{text}: no such file, device or URL")
    if path.is_dir():
        raise VideoError(f"{text}: is a directory, not a video or stream")
    return Source("file", str(path), text, format, opts)


class _PipeReader:
    """A non-seekable view of a binary stream whose ``read(n)`` returns what has arrived.

    FFmpeg asks for 32 KiB at a time; a buffered pipe's ``read(n)`` would wait for all of it (or the
    end of the stream), holding back frames already sent. ``read1``/``os.read`` return as soon as
    any bytes are there.
    """

    def __init__(self, raw: Any, *, use_fd: bool = False) -> None:
        self.raw = raw
        self.name = str(getattr(raw, "name", "<stream>"))
        # stdin is read through its descriptor: a thread blocked in os.read holds no Python-level
        # lock, so the interpreter can still exit while it waits (a blocked BufferedReader would abort).
        self._fd: int | None = None
        if use_fd or not hasattr(raw, "read1"):
            try:
                self._fd = raw.fileno()
            except (OSError, ValueError, AttributeError):
                self._fd = None

    def read(self, n: int = -1) -> bytes:
        if self._fd is not None:
            return os.read(self._fd, n if n is not None and n >= 0 else 1 << 20)
        if n is None or n < 0:
            return self.raw.read()
        if hasattr(self.raw, "read1"):
            return self.raw.read1(n)
        return self.raw.read(n)


def _redact(url: str) -> str:
    """Hide a password in ``scheme://user:password@host`` so it never reaches logs."""
    return re.sub(r"(://[^/:@]+):[^/@]*@", r"\1:***@", url)


@dataclass
class StreamFrame:
    """One frame from a live source."""

    t: float  #: source clock, seconds since the stream started (continues across reconnects)
    arrival: float  #: time.monotonic() when the frame was decoded
    image: np.ndarray  #: uint8 RGB [H, W, 3]
    connection: int  #: 0 for the first connection, +1 per reconnect


class FrameStream:
    """Frames of a :class:`Source`, thinned to ``fps``, reconnecting after drops.

    Args:
        source: anything :func:`parse_source` accepts, or a :class:`Source`.
        fps: keep at most this many frames per second of source time (None: every frame).
        realtime: pace a file to its own speed (default: on for files, off otherwise).
        reconnect: reopen after a drop (default: on for devices and network streams).
        max_retries: consecutive failed attempts before giving up with a VideoError.
        backoff, max_backoff: first and largest wait between attempts, seconds (doubling).
        open_timeout, read_timeout: seconds FFmpeg may block opening / reading a network source.
    """

    def __init__(
        self,
        source: Any,
        *,
        fps: float | None = None,
        realtime: bool | None = None,
        reconnect: bool | None = None,
        max_retries: int = 10,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        open_timeout: float = 10.0,
        read_timeout: float = 5.0,
        format: str | None = None,
        options: dict[str, str] | None = None,
    ) -> None:
        self.source = source if isinstance(source, Source) else parse_source(source, format=format, options=options)
        if fps is not None and fps <= 0:
            raise UsageError(f"fps must be positive, got {fps}")
        self.fps = fps
        self.realtime = self.source.kind == "file" if realtime is None else bool(realtime)
        self.reconnect = self.source.live if reconnect is None else bool(reconnect)
        if self.reconnect and self.source.kind in ("stdin", "fileobj"):
            raise UsageError(f"{self.source.name}: a pipe cannot be reopened, so it cannot reconnect")
        self.max_retries = max(0, int(max_retries))
        self.backoff = max(0.0, float(backoff))
        self.max_backoff = max(self.backoff, float(max_backoff))
        self.timeout = (float(open_timeout), float(read_timeout))
        self.reconnects = 0  #: successful reconnections so far
        self.frames_received = 0  #: frames decoded (before thinning)
        self.last_error: str | None = None
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the iterator to end (from another thread); it returns at the next frame or wait."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _open(self) -> Any:
        import av

        from actionclip.video.pyav import open_input

        src = self.source
        try:
            return open_input(src.target, format=src.format, options=src.options or None,
                              timeout=self.timeout if src.kind in ("url", "device") else None)
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoError(f"{src.name}: cannot open ({_cause(exc)})") from None
        except ValueError as exc:  # an unknown --format: retrying cannot help, so not a VideoError
            raise UsageError(f"{src.name}: cannot open ({_cause(exc)})") from None

    def __iter__(self) -> Iterator[StreamFrame]:
        clock = 0.0  # source-clock time of the last frame yielded or skipped
        last_arrival: float | None = None
        next_keep = 0.0
        failures = 0
        connection = -1
        while not self._stop.is_set():
            try:
                container = self._open()
            except VideoError as exc:
                failures += 1
                self.last_error = str(exc)
                if not self.reconnect or failures > self.max_retries:
                    raise VideoError(f"{exc}; gave up after {failures} attempt(s)" if failures > 1 else str(exc)) from None
                self._stop.wait(min(self.max_backoff, self.backoff * 2 ** (failures - 1)))
                continue
            connection += 1
            if connection:
                self.reconnects += 1
            # The new connection's clock starts where the old one stopped plus the outage.
            base = clock if last_arrival is None else clock + max(1e-3, time.monotonic() - last_arrival)
            got_frame = False
            start_wall: float | None = None  # realtime pacing: wall time of this connection's t=0
            try:
                for t_rel, image_frame in _decode(container, self._stop):
                    now = time.monotonic()
                    if self.realtime:
                        if start_wall is None:
                            start_wall = now - t_rel
                        delay = start_wall + t_rel - now
                        if delay > 0 and self._stop.wait(delay):
                            break
                        now = time.monotonic()
                    t = base + t_rel
                    self.frames_received += 1
                    if not got_frame:
                        got_frame, failures = True, 0
                    clock, last_arrival = t, now
                    if self.fps is not None:
                        if t + 1e-6 < next_keep:
                            continue
                        # Stay on the sampling grid, but never fall behind after a gap.
                        next_keep = max(next_keep + 1.0 / self.fps, t + 0.5 / self.fps)
                    yield StreamFrame(t, now, image_frame.to_ndarray(format="rgb24"), connection)
                    if self._stop.is_set():
                        break
                self.last_error = None
            except VideoError as exc:
                self.last_error = str(exc)
            finally:
                container.close()
            if self._stop.is_set() or not self.reconnect:
                if self.last_error and not self._stop.is_set() and not got_frame:
                    raise VideoError(self.last_error)
                return
            if not got_frame:
                failures += 1
                if failures > self.max_retries:
                    raise VideoError(f"{self.source.name}: stream gives no frames ({self.last_error or 'ended'}); "
                                     f"gave up after {failures} attempt(s)")
                self._stop.wait(min(self.max_backoff, self.backoff * 2 ** (failures - 1)))
            else:
                self._stop.wait(min(self.max_backoff, self.backoff))


def _decode(container: Any, stop: threading.Event) -> Iterator[tuple[float, Any]]:
    """``(seconds since the first frame, av.VideoFrame)`` of the first video stream until it ends.

    Decoder and demuxer errors become VideoError (a drop); timestamps that are missing or go
    backwards fall back to a steady clock at the stream's nominal rate.
    """
    import av

    if not container.streams.video:
        raise VideoError(f"{container.name}: has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    rate = float(stream.average_rate or stream.base_rate or stream.guessed_rate or 25)
    step = 1.0 / rate if rate > 0 else 0.04
    t0: float | None = None
    prev = -step
    try:
        for frame in container.decode(stream):
            if stop.is_set():
                return
            t = float(frame.time) if frame.time is not None else None
            if t is None:
                rel = prev + step
            else:
                if t0 is None:
                    t0 = t
                rel = t - t0
                if rel <= prev:
                    rel = prev + step
            prev = rel
            yield rel, frame
    except (av.error.FFmpegError, OSError, EOFError) as exc:
        raise VideoError(f"{container.name}: stream dropped ({_cause(exc)})") from None


def _cause(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__

