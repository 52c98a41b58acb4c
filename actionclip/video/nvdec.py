"""Decode on NVIDIA's hardware decoder (NVDEC): the CPU path's sampled frames, kept on the GPU.

Why: a GPU host encodes ~3,400 clips/s but its CPU decodes ~12 (issue 17). Hopper has 7 NVDEC
engines (H.264, HEVC, VP8/VP9, MPEG-1/2); one decode session uses one engine, so at least 7 sessions
must run at once. Frames stay on the GPU as uint8 and are resized, cropped (and normalised) there by
the same torch kernel as the CPU path (:mod:`actionclip.video.preprocess`).

**The same frames as the CPU path.** :func:`plan` reads the container (packets only) and decodes the
first frame on the CPU, as :mod:`actionclip.video.decode` does, for the start time, rotation and
frame count; indices are chosen by the same rule (``window_indices`` + ``clip_indices``), and index
``i`` is the frame on screen at ``t0 + (i + 0.5) / fps``, found among the packets' presentation times
(:func:`frame_positions`). Only files whose frames NVDEC numbers the same way go there: a codec and
pixel format it decodes, a container with real timestamps, evenly spaced presentation times.
Everything else -- MPEG-4 Part 2 (most UCF-101/HMDB51 ``.avi``), AV1, GIF, variable frame rate,
4:2:2/4:4:4, 10 bits -- is left to the CPU (:func:`nvdec_reason` says why). Colours: NVDEC's YUV->RGB
conversion is not FFmpeg's swscale, so pixels differ by a few grey levels (the device benchmark
reports the difference on the shared clips).

**Library: PyNvVideoCodec (primary), torchcodec (measured beside it).** PyNvVideoCodec (pip
``pynvvideocodec``, NVIDIA's) bundles its own demuxer and needs only the driver, ships CUDA 12 and
13 builds in one wheel, decodes a batch of frames by index (``get_batch_frames_by_index``) into
device memory as RGB, and reuses a decoder for the next file (``reconfigure_decoder``), so a session
costs its set-up once. torchcodec's CUDA decoder (``VideoDecoder(device="cuda")``) needs FFmpeg's
shared libraries and NVIDIA's NPP from the system, and a build matching the installed torch: on the
lent H200 image none of that is present, and on PyPI only its newest build exists. Both import
only where a driver is: PyNvVideoCodec raises ``RuntimeError`` without ``libnvidia-encode``, so it
is an optional extra (``actionclip[nvdec]``), never in the test extra.

**Sessions.** :class:`NvdecSource` runs ``sessions`` threads (default 8: one per engine plus one to
hide demuxing); each owns one decoder for its lifetime and reconfigures it per file. The native
decode releases the GIL. It is a decode pool's :class:`~actionclip.workers.DecodeSource`:
``accepts(item)`` (a cheap header check, and no once ``capacity`` items are in flight, so that the
CPU worker processes take the overflow instead of idling), ``submit(item) -> Future``, ``close()``.
A file accepted but found unfit later (irregular timestamps) is decoded on the CPU in that
session's thread, so nothing is lost. Which commands use it is decided in one place,
:func:`actionclip.pipeline.sources_for`.

Without the library or a GPU, :func:`nvdec_source` returns None and says so in one line; the CPU
path runs as before.
"""

from __future__ import annotations

import bisect
import concurrent.futures as cf
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from actionclip.errors import VideoError
from actionclip.video.decode import VideoInfo, display_rotation, read_video, stream_fps, window_indices
from actionclip.video.sampling import clip_indices

__all__ = ["NVDEC_CODECS", "BACKENDS", "Plan", "plan", "nvdec_reason", "accepts", "sample_clips",
           "views_on_device", "frame_positions", "FrameSource",
           "NvdecSource", "nvdec_source", "availability"]

# Codecs Hopper's NVDEC decodes (NVIDIA's support matrix), by FFmpeg's decoder name. MPEG-4 Part 2
# is left out on purpose: the packed B-frames of DivX/Xvid AVI files need FFmpeg's unpacking.
NVDEC_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "mpeg1video", "mpeg2video"})
# 4:2:0, 8 bits (NVDEC's H.264 path has no 4:2:2/4:4:4; 10-bit output would not be the uint8 RGB the
# preprocessing takes).
NVDEC_PIXEL_FORMATS = frozenset({"yuv420p", "yuvj420p", "nv12"})
# Containers whose packets carry presentation timestamps NVDEC's demuxer numbers frames by.
NVDEC_CONTAINERS = frozenset({"mov", "mp4", "matroska", "webm", "mpegts"})
NVDEC_MIN_SIZE = (48, 16)  # the decoder's smallest frame, width x height
NVDEC_MAX_SIDE = 8192
DEFAULT_SESSIONS = 8
BACKENDS = ("pynvvideocodec", "torchcodec")
_FPS_TOLERANCE = 0.02  # presentation times within 2% of a frame of the regular grid count as regular


def nvdec_reason(codec: str, pix_fmt: str | None, container: str, width: int, height: int) -> str | None:
    """Why NVDEC cannot take a stream with these properties, or None when it can."""
    if codec not in NVDEC_CODECS:
        return f"codec {codec} (NVDEC here: {', '.join(sorted(NVDEC_CODECS))})"
    if pix_fmt not in NVDEC_PIXEL_FORMATS:
        return f"pixel format {pix_fmt} (NVDEC decodes 4:2:0 only)"
    fmt = container.split(",")
    if not NVDEC_CONTAINERS.intersection(fmt):
        return f"container {container}"
    if width < NVDEC_MIN_SIZE[0] or height < NVDEC_MIN_SIZE[1] or max(width, height) > NVDEC_MAX_SIDE:
        return f"frame size {width}x{height}"
    return None


def frame_positions(times: Sequence[float], fps: float, indices: Sequence[int]) -> list[int]:
    """Decoder positions (presentation order) of the frames at ``indices``: frame ``i`` is the one on
    screen at ``(i + 0.5) / fps`` seconds from the first, the CPU reader's rule (``times``: each
    frame's presentation time from the first frame, ascending). Before the first frame: the first;
    past the last: the last (a header that over-counts by a frame or two)."""
    if not len(times):
        raise ValueError("no frame times")
    last = len(times) - 1
    return [min(last, max(0, bisect.bisect_right(times, (int(i) + 0.5) / fps) - 1)) for i in indices]


def regular(times: Sequence[float], fps: float) -> bool:
    """Presentation times on the grid ``k / fps`` (so position ``k`` is index ``k`` for any decoder)."""
    return all(abs(t * fps - k) <= _FPS_TOLERANCE for k, t in enumerate(times))


@dataclass(frozen=True)
class Plan:
    """What decoding a file on NVDEC needs, read on the CPU without decoding more than one frame."""

    info: VideoInfo  # the same fields as :func:`actionclip.video.probe` gives
    times: tuple[float, ...]  # presentation times from the first frame, ascending
    pix_fmt: str | None
    reason: str | None  # why the CPU must decode it (None: NVDEC can)


def _header(path: str) -> tuple[str, str | None, str, int, int]:
    from actionclip.video.pyav import open_input

    with open_input(path) as container:
        if not container.streams.video:
            raise VideoError(f"{path}: no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        return (ctx.name, ctx.pix_fmt, container.format.name or "", int(ctx.width or 0), int(ctx.height or 0))


def plan(path: str | os.PathLike) -> Plan:
    """Read ``path``'s container: sizes, rate, frame times, start time and rotation (one frame is
    decoded, as the CPU reader does), and whether NVDEC may decode it."""
    import av

    from actionclip.video.pyav import open_input

    path = os.fspath(path)
    try:
        container = open_input(path)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoError(f"{path}: not a video FFmpeg can read, or corrupt ({exc})") from None
    with container:
        if not container.streams.video:
            raise VideoError(f"{path}: no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        fps = stream_fps(stream)
        tb = float(stream.time_base or 1)
        try:
            pts = sorted(p.pts for p in container.demux(stream) if p.size and p.pts is not None)
            container.seek(0)
            ctx.thread_count = 1  # frame threads would decode several frames before the first comes out
            first = next(iter(container.decode(stream)), None)
        except av.error.FFmpegError as exc:
            raise VideoError(f"{path}: corrupt or truncated video data ({' '.join(str(exc).split())})") from None
        if first is None or first.pts is None or not pts:
            raise VideoError(f"{path}: no decodable video frames with timestamps")
        t0 = float(first.pts * tb)
        times = tuple(p * tb - t0 for p in pts if p >= first.pts)
        rotation = display_rotation(first)
        n = int(stream.frames or 0) or len(times)
        duration = float(stream.duration * tb) if stream.duration else n / fps
        w, h = (first.height, first.width) if rotation % 180 else (first.width, first.height)
        info = VideoInfo(path=path, width=w, height=h, fps=fps, duration=duration, num_frames=n,
                         rotation=rotation, codec=ctx.name, start_time=t0, frames_exact=True,
                         container=container.format.name or "")
        reason = nvdec_reason(ctx.name, ctx.pix_fmt, info.container, first.width, first.height)
        if reason is None and not regular(times, fps):
            reason = "irregular frame times (variable frame rate)"
        return Plan(info=info, times=times, pix_fmt=ctx.pix_fmt, reason=reason)


# --- decoders ------------------------------------------------------------------------------------


class FrameSource(Protocol):
    """One decode session: ``open`` a file (reusing the decoder), ``read`` frames at positions
    (ascending, unique) -> uint8 RGB ``[N, H, W, 3]`` on the GPU, before rotation."""

    def open(self, path: str) -> None: ...

    def read(self, positions: Sequence[int]) -> Any: ...

    def close(self) -> None: ...


class PyNvVideoCodecSource:
    """A PyNvVideoCodec ``SimpleDecoder`` made once and reconfigured for each file."""

    def __init__(self, gpu_id: int = 0):
        self.gpu_id = gpu_id
        self._decoder: Any = None
        self._length = 0

    def open(self, path: str) -> None:
        import PyNvVideoCodec as nvc

        if self._decoder is None:
            self._decoder = nvc.SimpleDecoder(path, gpu_id=self.gpu_id, use_device_memory=True,
                                              output_color_type=nvc.OutputColorType.RGB)
        else:
            self._decoder.reconfigure_decoder(path)
        self._length = len(self._decoder)

    def read(self, positions: Sequence[int]) -> Any:
        import torch

        # Its own frame count may be a frame short of the container's: clamp, as the CPU reader does.
        wanted = sorted({min(int(p), self._length - 1) for p in positions})
        frames = dict(zip(wanted, self._decoder.get_batch_frames_by_index(wanted)))
        # Stacked (copied) at once: the decoder may reuse its output surfaces on the next call.
        return torch.stack([torch.from_dlpack(frames[min(int(p), self._length - 1)]) for p in positions])

    def close(self) -> None:
        self._decoder = None


class TorchCodecSource:
    """torchcodec's CUDA ``VideoDecoder`` (a decoder per file; torchcodec caches NVDEC sessions)."""

    def __init__(self, gpu_id: int = 0):
        self.device = f"cuda:{gpu_id}"
        self._decoder: Any = None

    def open(self, path: str) -> None:
        from torchcodec.decoders import VideoDecoder

        self._decoder = VideoDecoder(path, device=self.device, seek_mode="exact")

    def read(self, positions: Sequence[int]) -> Any:
        return self._decoder.get_frames_at(indices=[int(p) for p in positions]).data.permute(0, 2, 3, 1)

    def close(self) -> None:
        self._decoder = None


def _source_factory(backend: str, gpu_id: int) -> Callable[[], FrameSource]:
    if backend == "pynvvideocodec":
        return lambda: PyNvVideoCodecSource(gpu_id)
    if backend == "torchcodec":
        return lambda: TorchCodecSource(gpu_id)
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")


def availability(backend: str = "pynvvideocodec") -> str | None:
    """Why NVDEC decoding cannot run here (no CUDA device, library missing or unusable), or None."""
    import torch

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if not torch.cuda.is_available():
        return "no CUDA device"
    module = "PyNvVideoCodec" if backend == "pynvvideocodec" else "torchcodec.decoders"
    logger = logging.getLogger("PyNvVideoCodec")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # it logs its own diagnosis before raising: the reason below says it
    try:
        __import__(module)
    except ImportError:
        return f"{backend} is not installed (pip install \"actionclip[nvdec]\")"
    except Exception as exc:  # noqa: BLE001 - a driver without the video libraries, a torch mismatch...
        return f"{backend} cannot load ({' '.join(str(exc).split())[:160]})"
    finally:
        logger.setLevel(level)
    return None


# --- sampling on the GPU --------------------------------------------------------------------------


def sample_clips(source: FrameSource, p: Plan, *, frames: int, clips: int = 1, mode: str = "center",
                 start: float | None = None, end: float | None = None, seed: int | None = None) -> Any:
    """The CPU path's sampled clips of a planned file, decoded by ``source`` -> uint8 ``[C, T, H, W, 3]``
    (rotation applied), on the source's device."""
    import torch

    first, stop = window_indices(p.info, start, end)
    indices = first + clip_indices(stop - first, frames, clips=clips, mode=mode, seed=seed)
    positions = frame_positions(p.times, p.info.fps, indices.ravel().tolist())
    wanted = sorted(set(positions))
    source.open(p.info.path)
    decoded = source.read(wanted)
    if decoded.shape[0] != len(wanted):
        raise VideoError(f"{p.info.path}: the decoder gave {decoded.shape[0]} of {len(wanted)} frames")
    order = torch.as_tensor([wanted.index(q) for q in positions], device=decoded.device)
    out = decoded.index_select(0, order)
    if p.info.rotation:
        out = torch.rot90(out, k=p.info.rotation // 90, dims=(1, 2))
    return out.reshape(clips, frames, *out.shape[1:])


def views_on_device(clips: Any, preprocessing: Any, crops: int = 1, normalize: bool = True) -> Any:
    """uint8 clips ``[C, T, H, W, 3]`` (a tensor on any device) -> views ``[crops * C, T, 3, R, R]``:
    normalised float32 as :class:`~actionclip.video.views.VideoViews` gives, or (``normalize=False``)
    resized and cropped uint8, for a consumer that normalises later."""
    from actionclip.video.preprocess import preprocess_frames

    out = preprocess_frames(clips, preprocessing, crops, normalize=normalize)
    return out.reshape(-1, *out.shape[-4:])


# --- the session pool ------------------------------------------------------------------------------


class NvdecSource:
    """NVDEC sessions in threads, each reusing one decoder; a decode pool's ``DecodeSource``.

    ``submit(item)`` gives a future of the item's views ``[V, T, 3, R, R]`` on the GPU (see
    :func:`views_on_device`), or of its error. ``video_of(item)`` names the item's video file, or
    None for an item that is not one (a folder of frames): this source declines it (default: the
    item is a path). ``finish(item, views)`` turns the views into the result a preparation gives
    (default: the views), run in the session's thread. ``capacity`` (default ``2 * sessions``: each
    session busy, one more queued behind it) is how many items may be in flight before
    :meth:`accepts` says no."""

    def __init__(self, views: Any, *, frames: int | None = None, clips: int = 1, crops: int = 1,
                 sessions: int = DEFAULT_SESSIONS, backend: str = "pynvvideocodec", gpu_id: int = 0,
                 normalize: bool = True, source_factory: Callable[[], FrameSource] | None = None,
                 capacity: int | None = None, video_of: Callable[[Any], str | None] | None = None,
                 finish: Callable[[Any, Any], Any] | None = None):
        if sessions < 1:
            raise ValueError(f"sessions must be >= 1, got {sessions}")
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.views = views  # the model's VideoViews: preprocessing, frames, sampling mode
        self.frames = int(frames or views.frames)
        self.clips, self.crops, self.normalize = clips, crops, normalize
        self.sessions = sessions
        self.capacity = int(capacity or 2 * sessions)
        self._video_of = video_of or _path_of
        self._finish = finish
        self._factory = source_factory or _source_factory(backend, gpu_id)
        self._pool = cf.ThreadPoolExecutor(max_workers=sessions, thread_name_prefix="nvdec")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sources: list[FrameSource] = []
        self._in_flight = 0
        self.stats = {"nvdec": 0, "cpu": 0}  # clips decoded each way (the CPU ones: accepted, then unfit)

    def accepts(self, item: Any) -> bool:
        """Whether this source takes the item now: a video file NVDEC can decode (see :func:`accepts`)
        and a free place (fewer than ``capacity`` items in flight)."""
        if self.in_flight >= self.capacity:
            return False
        path = self._video_of(item)
        return path is not None and accepts(path)

    def submit(self, item: Any) -> cf.Future:
        path = self._video_of(item)
        if path is None:
            raise ValueError(f"{item!r} names no video file: not for NVDEC (ask accepts() first)")
        with self._lock:
            self._in_flight += 1
        try:
            future = self._pool.submit(self._run, item, path)
        except BaseException:
            self._done(None)
            raise
        future.add_done_callback(self._done)  # finished, failed or cancelled: the place is free again
        return future

    @property
    def in_flight(self) -> int:
        """Items submitted whose futures are not done yet."""
        with self._lock:
            return self._in_flight

    def _done(self, _future: cf.Future | None) -> None:
        with self._lock:
            self._in_flight -= 1

    def _run(self, item: Any, path: str) -> Any:
        views = self.prepare(path)
        return views if self._finish is None else self._finish(item, views)

    def _source(self) -> FrameSource:
        source = getattr(self._local, "source", None)
        if source is None:
            source = self._local.source = self._factory()
            with self._lock:
                self._sources.append(source)
        return source

    def prepare(self, path: str) -> Any:
        """One video's views, decoded by this thread's session (or on the CPU when NVDEC cannot)."""
        return views_on_device(self.clips_of(path), self.views.preprocessing, self.crops, self.normalize)

    def clips_of(self, path: str) -> Any:
        """One video's sampled clips, uint8 ``[C, T, H, W, 3]`` on the GPU, decoded by this thread's
        session (or on the CPU when NVDEC cannot, then moved to the GPU)."""
        import torch

        p = plan(path)
        mode = self.views.sampling
        if p.reason is None:
            clips = sample_clips(self._source(), p, frames=self.frames, clips=self.clips, mode=mode)
            kind = "nvdec"
        else:
            host = read_video(path, frames=self.frames, clips=self.clips, mode=mode)
            clips = torch.from_numpy(np.ascontiguousarray(host))
            if torch.cuda.is_available():
                clips = clips.to(torch.device("cuda", torch.cuda.current_device()))
            kind = "cpu"
        with self._lock:
            self.stats[kind] += 1
        return clips

    @property
    def sessions_open(self) -> int:
        """Decoder sessions made so far (at most ``sessions``: each thread keeps its own)."""
        return len(self._sources)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for source in self._sources:
                source.close()
            self._sources.clear()


def accepts(item: Any) -> bool:
    """Whether NVDEC can decode this video, from its header (codec, pixel format, container, size):
    cheap enough for the caller's thread. Unreadable files: False (the CPU path reports them)."""
    path = _path_of(item)
    if path is None:
        return False
    try:
        return nvdec_reason(*_header(path)) is None
    except Exception:  # noqa: BLE001 - an unreadable file is the CPU path's to report
        return False


def _path_of(item: Any) -> str | None:
    """The item itself when it is a path; None otherwise (an item of another kind names its video
    through the ``video_of`` its owner gives)."""
    return os.fspath(item) if isinstance(item, (str, os.PathLike)) else None


_said: set[str] = set()


def nvdec_source(views: Any, *, backend: str = "pynvvideocodec", say: Callable[[str], None] | None = None,
                 **options: Any) -> NvdecSource | None:
    """An :class:`NvdecSource` when NVDEC can run here; else None, after one line saying why (once per
    process and reason; ``say`` defaults to stderr)."""
    reason = availability(backend)
    if reason is None:
        return NvdecSource(views, backend=backend, **options)
    line = f"actionclip: decoding on the CPU: NVDEC not used ({reason})"
    if line not in _said:
        _said.add(line)
        (say or (lambda text: print(text, file=sys.stderr, flush=True)))(line)
    return None
