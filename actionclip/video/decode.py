"""Read videos with PyAV (FFmpeg): probe, TSN frame sampling by seeking, streaming decode.

Frame indices
    Frame ``i`` is the ``i``-th frame in presentation order, ``0 <= i < num_frames``. Internally an
    index is read by *time*: frame ``i`` is the frame on screen at the middle of its nominal slot,
    ``t0 + (i + 0.5) / fps`` (``t0`` = presentation time of the first frame, ``fps`` = the stream's
    average rate). For constant-frame-rate video this is exactly the ``i``-th decoded frame, whatever
    the container's timestamp rounding; for variable-frame-rate video it samples the video evenly in
    *time*, which is what a per-segment TSN sample means there. Files whose timestamps are missing or
    out of order (AVI with packed B-frames, raw elementary streams) are read by counting decoded
    frames instead.

Seeking
    :func:`read_frames` never decodes the whole video: for each wanted frame it seeks to the keyframe
    at or before it (``backward=True, any_frame=False``) and decodes forward only to that frame. When
    the next wanted frame lies before the next keyframe (known from the container index when it has
    one, else guessed from the keyframe spacing seen so far), it keeps decoding instead of seeking.
    A seek that lands after the wanted time (index timestamps are decode times in MP4) is retried
    further back. Formats that cannot seek (GIF, raw streams, bad timestamps) are decoded
    sequentially from the start, once per call. Only the wanted frames are converted to RGB.

Times
    All times given to or returned by this module are seconds from the first frame (``t0``).

Rotation
    The display matrix (what FFmpeg makes of the ``rotate`` tag as well) is applied in multiples of
    90 degrees; ``width``/``height`` in :class:`VideoInfo` are after rotation. Flips are ignored.

Threading
    By default decoders run with ``thread_type = "AUTO"`` (frame and slice threads): decoding forward
    from a keyframe is the dominant cost and parallelises well; FFmpeg picks the thread count. A
    decode worker process (:mod:`actionclip.workers`) calls :func:`set_decoder_threads` with 1: there
    the parallelism is one video per worker, and N workers each starting a thread per core would
    oversubscribe the machine.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actionclip.errors import UsageError, VideoError
from actionclip.video.sampling import clip_indices

__all__ = ["VideoInfo", "probe", "read_frames", "read_video", "iter_frames", "window_indices",
           "VIDEO_EXTENSIONS", "set_decoder_threads"]

# Container extensions FFmpeg reads that hold video. Used only to pick video files out of folders
# (datasets, ``actionclip classify DIR``); a file named explicitly is tried whatever its extension.
VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .avi .mkv .webm .gif .mpg .mpeg .m2v .ts .mts .m2ts .flv .wmv .asf .3gp .3g2 "
    ".ogv .vob .mxf .dv .y4m .qt .f4v .divx .hevc .h264 .264".split()
)

# Formats whose index makes seeking reliable; anything else is read sequentially.
_SEEKABLE_FORMATS = ("mov", "mp4", "m4a", "3gp", "matroska", "webm", "avi", "flv", "asf", "ogg",
                     "mpegts", "mpeg", "mxf", "nut")
# Count packets (cheap demux, no decoding) to get an exact frame count for files up to this size.
_COUNT_PACKETS_MAX_BYTES = 256 * 1024 * 1024
# Frames beyond the last decodable one that are tolerated as header rounding before calling a
# file truncated (packed-B-frame AVI headers count one more frame than the decoder outputs).
_MISSING_FRAMES_TOLERATED = 2
_PROBE_FRAMES = 4
# FFmpeg threads per decoder: 0 lets FFmpeg choose (see the module notes); set_decoder_threads changes it.
_decoder_threads = 0


def set_decoder_threads(threads: int) -> None:
    """FFmpeg threads for every decoder opened from now on in this process (0: FFmpeg's choice, one per
    core; 1: no decoder threads, for a process that is itself one of many decode workers)."""
    global _decoder_threads
    if threads < 0:
        raise UsageError(f"threads must be >= 0, got {threads}")
    _decoder_threads = int(threads)


def _configure_threads(stream: Any) -> None:
    if _decoder_threads == 1:
        stream.thread_type = "NONE"
        stream.thread_count = 1
    else:
        stream.thread_type = "AUTO"
        stream.thread_count = _decoder_threads


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns about a video without decoding it.

    ``num_frames`` is exact when ``frames_exact`` (from the container header, or by counting
    packets), else an estimate from duration x fps. ``rotation`` is the display rotation in degrees,
    counterclockwise (a multiple of 90, already applied to ``width``/``height``).
    """

    path: str
    width: int
    height: int
    fps: float
    duration: float
    num_frames: int
    rotation: int
    codec: str
    start_time: float
    frames_exact: bool
    container: str


# --------------------------------------------------------------------------------------------
# Opening and probing


def _check_path(path: str | os.PathLike) -> str:
    text = os.fspath(path)
    if "://" in text or text.startswith("/dev/"):
        return text  # URLs and devices: FFmpeg reports what is wrong
    p = Path(text)
    if not p.exists():
        raise VideoError(f"{text}: no such file")
    if p.is_dir():
        raise VideoError(f"{text}: is a directory, not a video")
    if p.stat().st_size == 0:
        raise VideoError(f"{text}: empty file (0 bytes)")
    return text


def _av_error_cause(exc: BaseException) -> str:
    """FFmpeg's reason, on one line."""
    msg = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(msg).split())


def stream_fps(stream: Any) -> float:
    """A video stream's frame rate: its average rate, else what FFmpeg guesses, else 25."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate and float(rate) > 0 else 25.0


def display_rotation(frame: Any) -> int:
    """A decoded frame's display rotation in degrees counterclockwise, to the nearest multiple of 90,
    in ``(-180, 180]``."""
    rotation = int(round((frame.rotation or 0) / 90.0)) * 90 % 360
    return rotation - 360 if rotation > 180 else rotation


class _Video:
    """An open video stream plus what sampling needs to know about it."""

    def __init__(self, path: str | os.PathLike, options: dict[str, str] | None = None):
        self.path = _check_path(path)
        self._options = options or {}
        self.container = self._open()
        try:
            self._init_stream()
        except BaseException:
            self.container.close()
            raise

    def _open(self) -> Any:
        import av

        from actionclip.video.pyav import open_input

        try:
            return open_input(self.path, options=self._options)  # never fails on metadata text
        except av.error.FFmpegError as exc:
            raise VideoError(f"{self.path}: not a video FFmpeg can read, or corrupt "
                             f"({_av_error_cause(exc)})") from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise VideoError(f"{self.path}: cannot open ({exc})") from None

    def _init_stream(self) -> None:
        c = self.container
        # FFmpeg's text-art demuxers "play" any text file (e.g. a .txt) as a rendered terminal.
        if (c.format.name or "") in ("tty", "bintext", "xbin", "adf", "idf"):
            raise VideoError(f"{self.path}: a text file, not a video")
        if not c.streams.video:
            kind = "audio-only file" if c.streams.audio else "no video stream"
            raise VideoError(f"{self.path}: {kind} (no video to read)")
        self.stream = c.streams.video[0]
        _configure_threads(self.stream)
        self.time_base = self.stream.time_base or 1
        self.fps = stream_fps(self.stream)
        self.format = c.format.name or ""
        # Probe the first frames: start time, rotation, size, whether timestamps can be trusted.
        first: list[Any] = []
        try:
            for frame in self._decode():
                first.append(frame)
                if len(first) >= _PROBE_FRAMES:
                    break
        except VideoError as exc:
            if not first:
                raise VideoError(f"{self.path}: no decodable video frames "
                                 f"({str(exc).split(' (', 1)[-1]}") from None
        if not first:
            raise VideoError(f"{self.path}: no decodable video frames")
        pts = [f.pts for f in first]
        fmt = self.format.split(",")[0]
        # Raw elementary streams (m4v, h264, ...) carry no real timestamps: the parser invents
        # them from a rate that may be wrong, so such files are read by counting frames.
        known = fmt in _SEEKABLE_FORMATS or fmt == "gif"
        self.timed = (known and all(p is not None for p in pts)
                      and all(b > a for a, b in zip(pts, pts[1:])))
        self.t0 = float(first[0].pts * self.time_base) if first[0].pts is not None else 0.0
        self.raw_width, self.raw_height = first[0].width, first[0].height
        self.rotation = display_rotation(first[0])
        self.seekable = self.timed and fmt in _SEEKABLE_FORMATS
        self._info: VideoInfo | None = None
        self._reset()

    # -- decoding primitives ------------------------------------------------------------------

    def _decode(self) -> Iterator[Any]:
        import av

        try:
            yield from self.container.decode(self.stream)
        except av.error.EOFError:
            return
        except av.error.FFmpegError as exc:
            raise VideoError(f"{self.path}: corrupt or truncated video data "
                             f"({_av_error_cause(exc)})") from None

    def _reset(self) -> None:
        """Back to the start for a sequential read."""
        self._seek_pts(None)

    def _seek_pts(self, pts: int | None) -> None:
        import av

        try:
            if pts is None:
                self.container.seek(0)  # av.time_base units: the very start of the file
            else:
                self.container.seek(pts, backward=True, any_frame=False, stream=self.stream)
        except av.error.FFmpegError as exc:
            if pts is not None:
                raise _CannotSeek() from exc
            self._reopen()
        self._frames = self._decode()
        self._count = -1  # decoded-frame counter, for untimed streams
        self._prev = None  # (key, frame): last frame at or before the latest target
        self._ahead = None  # (key, frame) decoded past the latest target, or None
        self._eof = False

    def _reopen(self) -> None:
        """Open the file again (same demuxer options): for streams that cannot seek back to 0."""
        self.container.close()
        self.container = self._open()
        self.stream = self.container.streams.video[0]
        _configure_threads(self.stream)

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> _Video:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- info ---------------------------------------------------------------------------------

    @property
    def info(self) -> VideoInfo:
        if self._info is None:
            self._info = self._make_info()
        return self._info

    def _make_info(self) -> VideoInfo:
        s, tb = self.stream, self.time_base
        n, exact = int(s.frames or 0), bool(s.frames)
        size = os.path.getsize(self.path) if os.path.isfile(self.path) else None
        if n <= 0 and size is not None and size <= _COUNT_PACKETS_MAX_BYTES:
            n, exact = self._count_packets(), True
        duration = None
        if s.duration:
            duration = float(s.duration * tb)
        elif self.container.duration:
            duration = self.container.duration / 1e6 - self.t0
        if n <= 0:
            n, exact = max(1, round((duration or 0) * self.fps)), False
        if not self.timed or not duration or duration <= 0:
            duration = n / self.fps
        codec = s.codec_context.name if s.codec_context else "?"
        w, h = (self.raw_height, self.raw_width) if self.rotation % 180 else (self.raw_width,
                                                                             self.raw_height)
        return VideoInfo(path=self.path, width=w, height=h, fps=self.fps, duration=duration,
                         num_frames=n, rotation=self.rotation, codec=codec, start_time=self.t0,
                         frames_exact=exact, container=self.format)

    def _count_packets(self) -> int:
        import av

        count = 0
        try:
            self.container.seek(0)
            for packet in self.container.demux(self.stream):
                if packet.size:
                    count += 1
        except av.error.FFmpegError:
            pass  # a damaged tail: the packets before it still count
        self._reset()
        return count

    # -- frame access -------------------------------------------------------------------------

    def _key(self, frame: Any) -> float:
        """Sort key of a decoded frame: its time (seconds from t0), or its decode counter."""
        self._count += 1
        if not self.timed:
            return float(self._count)
        if frame.pts is None:
            raise _BadTimestamps()
        return float(frame.pts * self.time_base) - self.t0

    def _target(self, index: int) -> float:
        return (index + 0.5) / self.fps if self.timed else index + 0.5

    def _pull(self) -> tuple[float, Any] | None:
        if self._eof:
            return None
        frame = next(self._frames, None)
        if frame is None:
            self._eof = True
            return None
        key = self._key(frame)
        last = self._ahead or self._prev
        if last is not None and key <= last[0]:
            raise _BadTimestamps()
        return key, frame

    def _advance_to(self, target: float) -> tuple[float, Any] | None:
        """Decode forward to the last frame whose key is <= target."""
        while True:
            if self._ahead is None:
                self._ahead = self._pull()
                if self._ahead is None:
                    return self._prev
            if self._ahead[0] > target:
                return self._prev
            self._prev, self._ahead = self._ahead, None

    def _should_seek(self, target: float) -> bool:
        if not self.seekable:
            return False
        here = self._ahead or self._prev
        if here is None:
            return True
        if target < (self._prev[0] if self._prev else here[0]):
            return True
        entries = self.stream.index_entries
        if len(entries):
            ts = int(math.floor((target + self.t0) / self.time_base))
            i = entries.search_timestamp(ts, backward=True, any_frame=False)
            if i >= 0:
                key_time = float(entries[i].timestamp * self.time_base) - self.t0
                return key_time > here[0]
        return target - here[0] > max(2.0, 48 / self.fps)

    def frame_at(self, target: float) -> Any:
        """The decoded frame on screen at ``target`` (a key as from :meth:`_key`)."""
        if self._should_seek(target):
            return self._seek_and_find(target)
        if self._prev is not None and target < self._prev[0]:
            self._reset()
        found = self._advance_to(target)
        if found is None and self._ahead is not None:
            found = self._ahead  # target before the first frame: show the first one
        return found

    def _seek_and_find(self, target: float) -> Any:
        back = 0.0
        while True:
            ts = target - back
            if ts <= 0:
                self._reset()
            else:
                self._seek_pts(int(math.floor((ts + self.t0) / self.time_base)))
            found = self._advance_to(target)
            if found is not None or ts <= 0:
                return found if found is not None else self._ahead
            # The seek landed after the target (MP4 indexes decode times): go further back.
            back = 1.0 if back == 0 else back * 4

    def read(self, indices: Sequence[int]) -> np.ndarray:
        """RGB frames ``[len(indices), H, W, 3]`` at ``indices`` (any order, duplicates allowed)."""
        wanted = sorted(set(int(i) for i in indices))
        try:
            frames = self._read_sorted(wanted)
        except (_BadTimestamps, _CannotSeek):
            # Timestamps not usable after all: count decoded frames from the start instead.
            self.timed, self.seekable = False, False
            self._reopen()
            self._reset()
            frames = self._read_sorted(wanted)
        by_index = dict(zip(wanted, frames))
        return np.stack([by_index[int(i)] for i in indices]) if len(indices) else \
            np.zeros((0, self.info.height, self.info.width, 3), np.uint8)

    def _read_sorted(self, wanted: list[int]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        last: tuple[Any, np.ndarray] | None = None
        for index in wanted:
            if index < 0:
                raise UsageError(f"{self.path}: frame index {index} is negative")
            found = self.frame_at(self._target(index))
            if found is None:
                raise VideoError(f"{self.path}: no decodable video frames")
            self._check_not_truncated(index, found[0])
            if last is None or last[0] is not found[1]:  # a frame shown for several slots: convert once
                last = (found[1], self.to_rgb(found[1]))
            out.append(last[1])
        return out

    def _check_not_truncated(self, index: int, key: float) -> None:
        if not self._eof:
            return
        last_index = key * self.fps if self.timed else key
        if index - last_index > _MISSING_FRAMES_TOLERATED + 0.5:
            seconds = key if self.timed else key / self.fps
            raise VideoError(f"{self.path}: truncated or corrupt, decoding stopped at "
                             f"{seconds:.2f} s (frame ~{int(last_index)}) but frame {index} "
                             f"was asked for")

    def to_rgb(self, frame: Any) -> np.ndarray:
        import av

        try:
            rgb = frame.to_ndarray(format="rgb24", width=self.raw_width, height=self.raw_height)
        except av.error.FFmpegError as exc:
            raise VideoError(f"{self.path}: cannot convert a frame ({_av_error_cause(exc)})") \
                from None
        if self.rotation:
            rgb = np.ascontiguousarray(np.rot90(rgb, k=self.rotation // 90))
        return rgb


class _BadTimestamps(Exception):
    """Frame timestamps missing or not increasing: fall back to counting frames."""


class _CannotSeek(Exception):
    """The demuxer refused to seek: fall back to a sequential read."""


# --------------------------------------------------------------------------------------------
# Public API


def probe(path: str | os.PathLike) -> VideoInfo:
    """Size, rate, duration, frame count, rotation and codec of a video (decodes its first frames).

    Raises:
        VideoError: missing/empty/unreadable file, no video stream, no decodable frame.
    """
    with _Video(path) as video:
        return video.info


def read_frames(path: str | os.PathLike, indices: Sequence[int]) -> np.ndarray:
    """Decode the frames at ``indices`` (see the module notes) -> uint8 RGB ``[N, H, W, 3]``.

    Rotation is applied. Indices may repeat and come in any order; an index past the end of a file
    whose header over-counts by a frame or two gives the last frame.

    Raises:
        VideoError: unreadable file, or the file ends well before a wanted frame (truncated).
    """
    with _Video(path) as video:
        return video.read(indices)


def window_indices(info: VideoInfo, start: float | None, end: float | None) -> tuple[int, int]:
    """Frame index range ``[first, stop)`` whose slots start in ``[start, end)`` seconds.

    ``end`` past the end of the video is clipped to it; a window that misses the video entirely
    raises :class:`VideoError`.
    """
    n, fps = info.num_frames, info.fps
    if start is None and end is None:
        return 0, n
    lo = 0.0 if start is None else float(start)
    hi = info.duration if end is None else min(float(end), max(info.duration, n / fps))
    if lo < 0 or (end is not None and float(end) <= lo):
        raise VideoError(f"{info.path}: bad window start={start} end={end} (need 0 <= start < end)")
    first = max(0, math.ceil(lo * fps - 1e-6))
    stop = n if end is None or float(end) >= info.duration else min(n, math.ceil(hi * fps - 1e-6))
    if first >= n:
        raise VideoError(f"{info.path}: window start={lo:g} s is outside the video "
                         f"(0-{info.duration:.2f} s)")
    return first, max(stop, first + 1)


def read_video(
    path: str | os.PathLike,
    frames: int = 8,
    *,
    clips: int = 1,
    mode: str = "center",
    start: float | None = None,
    end: float | None = None,
    seed: int | None = None,
) -> np.ndarray:
    """Sample ``clips`` temporal views of ``frames`` frames -> uint8 RGB ``[C, T, H, W, 3]``.

    Args:
        path: the video file.
        frames: T, frames per clip.
        clips: C, temporal views (see :func:`actionclip.video.sampling.sample_indices`).
        mode: ``center`` (test protocol, default), ``random`` (training), ``uniform``.
        start, end: only this window of the video, seconds from its first frame.
        seed: seed of the ``random`` mode.
    """
    with _Video(path) as video:
        first, stop = window_indices(video.info, start, end)
        indices = first + clip_indices(stop - first, frames, clips=clips, mode=mode, seed=seed)
        out = video.read(indices.ravel().tolist())
    return out.reshape(clips, frames, *out.shape[1:])


def iter_frames(
    path: str | os.PathLike,
    *,
    fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
    options: dict[str, str] | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Stream ``(time, rgb_frame)`` in order, in constant memory (rotation applied).

    Without ``fps`` every frame in ``[start, end)`` is yielded with its presentation time. With
    ``fps`` the video is resampled to that rate: at times ``start + k / fps`` the frame on screen
    then is yielded (repeated or skipped as needed), up to the end of the last frame or ``end``.
    Times are seconds from the first frame. ``path`` may also be a URL or device FFmpeg can open,
    with demuxer ``options``.
    """
    if fps is not None and fps <= 0:
        raise UsageError(f"fps must be positive, got {fps}")
    with _Video(path, options=options) as video:
        lo = 0.0 if start is None else float(start)
        hi = math.inf if end is None else float(end)
        if hi <= lo:
            raise VideoError(f"{video.path}: bad window start={start} end={end}")
        if lo > 0 and video.seekable:
            try:
                video._seek_pts(int(math.floor((lo + video.t0) / video.time_base)))
            except _CannotSeek:
                video._reset()
        native = 1.0 / video.fps
        prev_t = -math.inf
        held: list[Any] | None = None  # resampling: [time, frame, rgb or None] of the frame on screen
        k = 0
        for count, frame in enumerate(video._frames):
            t = (float(frame.pts * video.time_base) - video.t0
                 if video.timed and frame.pts is not None else count * native)
            if t <= prev_t:  # timestamps went backwards: continue on a steady clock
                t = prev_t + native
            prev_t = t
            if fps is None:
                if t >= hi:
                    return
                if t >= lo:
                    yield t, video.to_rgb(frame)
                continue
            # Grid times before this frame starts show the previous one.
            while held is not None and lo + k / fps < min(t, hi):
                yield lo + k / fps, _held_rgb(video, held)
                k += 1
            if lo + k / fps >= hi:
                return
            held = [t, frame, None]
        if fps is not None and held is not None:
            stop = min(hi, held[0] + native)
            while lo + k / fps < stop:
                yield lo + k / fps, _held_rgb(video, held)
                k += 1


def _held_rgb(video: _Video, held: list[Any]) -> np.ndarray:
    if held[2] is None:
        held[2] = video.to_rgb(held[1])
    return held[2]
