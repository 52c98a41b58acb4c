"""Synthetic videos for tests, benchmarks and the sample (not public API).

:func:`make_test_video` writes a video whose every frame carries its own index as a 4x4 grid of
large yellow (bit set) / navy (bit clear) blocks, so the index of a decoded frame can be recovered
with :func:`frame_index_from_pixels` despite lossy compression, chroma subsampling or a GIF palette.
The two colours also differ in their red/blue balance, so an RGB/BGR swap is visible.
:func:`write_audio` writes an audio-only file (for error handling tests). The general writer is
:func:`actionclip.video.write.write_video`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from actionclip.files import atomic_path
from actionclip.video.write import add_video_stream, muxer_for, write_video

GRID = 4  # the index is written as GRID x GRID bits, most significant bit first
MAX_INDEX = 2 ** (GRID * GRID) - 1
ON_COLOR = (255, 255, 0)  # yellow: luma ~226, red >> blue
OFF_COLOR = (0, 0, 128)  # navy: luma ~15, blue >> red


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
    fmt = muxer_for(path.suffix.lower())
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format=fmt) as container:
        stream = add_video_stream(container, "libx264", rate, counter_frame(0, size), None, None, opts)
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
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format=fmt) as container:
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
