"""Write synthetic videos with PyAV, for tests, benchmarks and samples.

:func:`make_test_video` writes a video whose every frame carries its own index as a 4x4 grid of
large yellow (bit set) / navy (bit clear) blocks, so the index of a decoded frame can be recovered
with :func:`frame_index_from_pixels` despite lossy compression, chroma subsampling or a GIF palette.
The two colours also differ in their red/blue balance, so an RGB/BGR swap is visible.

:func:`write_video` is the general writer: any frames, any container FFmpeg can mux (mp4, mkv, avi,
webm, mov, gif, ...), explicit presentation times for variable frame rate, and rotation metadata (a
display matrix, which is what FFmpeg writes for the old ``rotate`` tag as well).
:func:`write_audio` writes an audio-only file (for error handling tests).

Files are written to a temporary name beside the target and renamed, so a reader never sees a
half-written video.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

# Codec picked when the caller gives none, by file extension.
DEFAULT_CODECS = {
    ".mp4": "libx264",
    ".m4v": "libx264",
    ".mov": "libx264",
    ".mkv": "libx264",
    ".avi": "mpeg4",
    ".webm": "libvpx-vp9",
    ".gif": "gif",
    ".ts": "libx264",
}

GRID = 4  # the index is written as GRID x GRID bits, most significant bit first
MAX_INDEX = 2 ** (GRID * GRID) - 1
ON_COLOR = (255, 255, 0)  # yellow: luma ~226, red >> blue
OFF_COLOR = (0, 0, 128)  # navy: luma ~15, blue >> red


def _default_pix_fmt(codec: str, width: int, height: int) -> str:
    if codec == "gif":
        return "rgb8"
    if codec == "mjpeg":
        return "yuvj420p"
    if codec in ("libx264", "libx265", "hevc") and (width % 2 or height % 2):
        # x264/x265 refuse 4:2:0 with odd dimensions; 4:4:4 keeps the exact size.
        return "yuv444p"
    return "yuv420p"


@contextlib.contextmanager
def _atomic_output(path: Path) -> Iterator[Path]:
    """A temporary name to write; renamed to ``path`` when the block succeeds, removed otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory (rename stays atomic), same extension (FFmpeg picks muxers by it).
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float = 25,
    codec: str | None = None,
    pix_fmt: str | None = None,
    rotation: int | None = None,
    *,
    pts: Sequence[float] | None = None,
    gop: int | None = None,
    options: dict[str, str] | None = None,
    container_format: str | None = None,
) -> Path:
    """Encode uint8 RGB frames ``[N, H, W, 3]`` (array or iterable of ``[H, W, 3]``) into ``path``.

    Args:
        path: output file; the container is chosen from its extension unless ``container_format``.
        frames: the frames, all the same size.
        fps: nominal frame rate (frame ``i`` is shown at ``i / fps`` seconds unless ``pts``).
        codec: encoder name; default by extension (libx264 for mp4/mkv/mov, mpeg4 for avi,
            libvpx-vp9 for webm, gif for gif).
        pix_fmt: encoder pixel format; default yuv420p (yuv444p for odd sizes with x264, yuvj420p
            for mjpeg, rgb8 for gif).
        rotation: display rotation in degrees, counterclockwise, as FFmpeg's display matrix
            defines it (a phone's ``rotate=90`` tag is stored as -90); players and
            :mod:`actionclip.video` show the frame rotated by this angle.
        pts: presentation time of each frame in seconds, strictly increasing: a variable frame
            rate video (millisecond time base).
        gop: keyframe interval in frames (default: the encoder's).
        options: extra encoder options (e.g. ``{"preset": "ultrafast"}``).
        container_format: FFmpeg muxer name, when the extension does not say.

    Returns:
        The path written.
    """
    import av

    path = Path(path)
    codec = codec or DEFAULT_CODECS.get(path.suffix.lower(), "libx264")
    rate = Fraction(fps).limit_denominator(1001 * 1000)
    time_base = Fraction(1, 1000) if pts is not None else None
    # The temporary name may not carry a muxer-friendly extension in every case; say it.
    fmt = container_format or _muxer_for(path.suffix.lower())
    with _atomic_output(path) as tmp, av.open(str(tmp), "w", format=fmt) as container:
        stream = None
        for i, frame in enumerate(frames):
            frame = np.ascontiguousarray(frame, dtype=np.uint8)
            if frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frame {i} has shape {frame.shape}, expected [H, W, 3]")
            if stream is None:
                stream = _add_stream(container, codec, rate, frame, pix_fmt, gop, options)
                if time_base is not None:
                    stream.codec_context.time_base = time_base
                    stream.time_base = time_base
                if rotation:
                    stream.set_display_rotation(float(rotation))
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if pts is not None:
                video_frame.pts = round(pts[i] / time_base)
                video_frame.time_base = time_base
            for packet in stream.encode(video_frame):
                container.mux(packet)
        if stream is None:
            raise ValueError(f"no frames to write to {path}")
        for packet in stream.encode():
            container.mux(packet)
    return path


def _muxer_for(suffix: str) -> str | None:
    return {".mkv": "matroska", ".webm": "webm", ".mov": "mov", ".mp4": "mp4", ".avi": "avi",
            ".gif": "gif", ".m4v": "mp4", ".ts": "mpegts"}.get(suffix)


def _add_stream(container, codec, rate, frame, pix_fmt, gop, options):
    height, width = frame.shape[:2]
    stream = container.add_stream(codec, rate=rate)
    stream.width, stream.height = width, height
    stream.pix_fmt = pix_fmt or _default_pix_fmt(codec, width, height)
    opts = dict(options or {})
    if gop is not None:
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            # Fixed keyframe spacing, no scene-cut keyframes: the structure real files of a known
            # GOP have, and reproducible.
            opts.setdefault("x264-params", f"keyint={gop}:min-keyint={gop}:scenecut=0")
    if opts:
        stream.options = opts
    return stream


def counter_frame(index: int, size: tuple[int, int]) -> np.ndarray:
    """One ``[H, W, 3]`` uint8 frame showing ``index`` as a 4x4 grid of coloured bit blocks."""
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"frame index {index} outside 0..{MAX_INDEX}")
    width, height = size
    bits = (index >> np.arange(GRID * GRID - 1, -1, -1)) & 1
    colors = np.where(bits[:, None].astype(bool), ON_COLOR, OFF_COLOR).astype(np.uint8)
    cells = colors.reshape(GRID, GRID, 3)
    # Block r spans rows [r*H//GRID, (r+1)*H//GRID); np.repeat is ~10x faster than fancy indexing.
    row_counts = np.bincount((np.arange(height) * GRID) // height, minlength=GRID)
    col_counts = np.bincount((np.arange(width) * GRID) // width, minlength=GRID)
    return np.repeat(np.repeat(cells, row_counts, axis=0), col_counts, axis=1)


def frame_index_from_pixels(frame: np.ndarray) -> int:
    """Recover the index drawn by :func:`counter_frame` from a decoded RGB frame ``[H, W, 3]``.

    Reads the mean luma of the central half of each block; raises ValueError when a block is
    neither clearly on nor clearly off (not a counter frame, or damaged beyond recognition).
    """
    frame = np.asarray(frame)
    height, width = frame.shape[:2]
    luma = frame[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    index = 0
    for r in range(GRID):
        for c in range(GRID):
            y0, y1 = (r * height) // GRID, ((r + 1) * height) // GRID
            x0, x1 = (c * width) // GRID, ((c + 1) * width) // GRID
            qy, qx = (y1 - y0) // 4, (x1 - x0) // 4
            block = luma[y0 + qy : max(y1 - qy, y0 + qy + 1), x0 + qx : max(x1 - qx, x0 + qx + 1)]
            mean = float(block.mean())
            if 70 < mean < 170:
                raise ValueError(f"block ({r}, {c}) has ambiguous luma {mean:.0f}")
            index = (index << 1) | int(mean >= 170)
    return index


def make_test_video(
    path: str | os.PathLike,
    seconds: float = 2.0,
    size: tuple[int, int] = (96, 64),
    fps: float = 25,
    codec: str | None = None,
    pattern: str = "counter",
    *,
    num_frames: int | None = None,
    vfr: bool = False,
    pts: Sequence[float] | None = None,
    rotation: int | None = None,
    pix_fmt: str | None = None,
    gop: int | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Write a small video whose frames are told apart by :func:`frame_index_from_pixels`.

    Args:
        path: output file (container from the extension: mp4, mkv, avi, webm, mov, gif ...).
        seconds: length; ``num_frames`` overrides it (``round(seconds * fps)`` frames, at least 1).
        size: ``(width, height)``; any size, odd ones included.
        fps: frame rate (nominal rate when ``vfr``).
        codec, pix_fmt, rotation, gop, options: as :func:`write_video`.
        pattern: ``"counter"`` (the index blocks) is the only pattern.
        vfr: variable frame rate with a fixed, irregular rhythm: frame durations cycle through
            0.5, 1.5, 1 and 1 nominal frame intervals (mean = 1/fps), rounded to milliseconds.
        pts: explicit presentation times in seconds (implies a variable-rate time base).

    Returns:
        The path written.
    """
    if pattern != "counter":
        raise ValueError(f"unknown pattern {pattern!r}; only 'counter' exists")
    n = num_frames if num_frames is not None else max(1, round(seconds * fps))
    if vfr and pts is None:
        pts = vfr_times(n, fps)
    if pts is not None and len(pts) != n:
        raise ValueError(f"{len(pts)} presentation times for {n} frames")
    frames = (counter_frame(i, size) for i in range(n))
    return write_video(path, frames, fps=fps, codec=codec, pix_fmt=pix_fmt, rotation=rotation,
                       pts=pts, gop=gop, options=options)


def make_long_video(
    path: str | os.PathLike,
    seconds: float,
    size: tuple[int, int] = (1280, 720),
    fps: float = 25,
    gop_seconds: float = 5.0,
    options: dict[str, str] | None = None,
) -> Path:
    """A long H.264 video written in seconds: one GOP is encoded, its packets repeated.

    One closed GOP of ``round(gop_seconds * fps)`` counter frames (a keyframe, then P-frames, no
    B-frames) is encoded once; its packets are then muxed again and again with shifted timestamps.
    Decoding it costs exactly what a real file with that keyframe interval costs, and frame ``i``
    shows ``i % gop`` (:func:`frame_index_from_pixels`). For benchmarks of long videos.
    """
    import av

    path = Path(path)
    gop = max(1, round(gop_seconds * fps))
    total = max(1, round(seconds * fps))
    rate = Fraction(fps).limit_denominator(1001 * 1000)
    opts = {"preset": "ultrafast", "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"}
    opts.update(options or {})
    fmt = _muxer_for(path.suffix.lower())
    with _atomic_output(path) as tmp, av.open(str(tmp), "w", format=fmt) as container:
        stream = _add_stream(container, "libx264", rate, counter_frame(0, size), None, None, opts)
        stream.codec_context.gop_size = gop
        encoded = []
        for i in range(min(gop, total)):
            frame = av.VideoFrame.from_ndarray(counter_frame(i, size), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            encoded += stream.encode(frame)
        encoded += stream.encode()
        # Keep bytes, not Packets: muxing hands a packet's buffer over to FFmpeg.
        gop_packets = [(bytes(p), p.pts, p.dts, p.is_keyframe, p.duration) for p in encoded]
        tb = encoded[0].time_base
        step = round(gop / rate / tb)  # one GOP in stream time-base units
        for start in range(0, total, gop):
            offset = (start // gop) * step
            for k, (data, pts, dts, key, duration) in enumerate(gop_packets):
                if start + k >= total:
                    break
                packet = av.Packet(data)
                packet.pts, packet.dts = pts + offset, dts + offset
                packet.time_base, packet.stream = tb, stream
                packet.is_keyframe = key
                packet.duration = duration
                container.mux(packet)
    return path


def vfr_times(num_frames: int, fps: float) -> list[float]:
    """Irregular presentation times (seconds, millisecond-exact) averaging ``fps``."""
    pattern = (0.5, 1.5, 1.0, 1.0)
    times, t = [], 0.0
    for i in range(num_frames):
        times.append(round(t, 3))
        t += pattern[i % len(pattern)] / fps
    return times


def write_audio(path: str | os.PathLike, seconds: float = 1.0, rate: int = 16000) -> Path:
    """Write an audio-only file (a 440 Hz tone; codec from the extension: wav, m4a, mp3, mp4)."""
    import av

    path = Path(path)
    codec = {".wav": "pcm_s16le", ".mp3": "mp3", ".m4a": "aac", ".mp4": "aac",
             ".mkv": "aac"}.get(path.suffix.lower(), "aac")
    fmt = {".wav": "wav", ".mp3": "mp3", ".m4a": "mp4", ".mp4": "mp4",
           ".mkv": "matroska"}.get(path.suffix.lower())
    with _atomic_output(path) as tmp, av.open(str(tmp), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        n = int(seconds * rate)
        tone = (np.sin(2 * np.pi * 440 * np.arange(n) / rate) * 0.3 * 32767).astype(np.int16)
        chunk = 1024
        for start in range(0, n, chunk):
            part = tone[start : start + chunk][None, :]
            frame = av.AudioFrame.from_ndarray(part, format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
