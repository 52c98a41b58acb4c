"""Encode frames into a video file with PyAV (FFmpeg): any container, variable frame rate, rotation.

Used to write annotated videos (``timeline --annotate``), samples, and the synthetic videos of the
tests. A file is written to a temporary name beside the target and renamed
(:func:`actionclip.files.atomic_path`), so a reader never sees a half-written video.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from actionclip.files import atomic_path

__all__ = ["write_video", "DEFAULT_CODECS"]

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

def _default_pix_fmt(codec: str, width: int, height: int) -> str:
    if codec == "gif":
        return "rgb8"
    if codec == "mjpeg":
        return "yuvj420p"
    if codec in ("libx264", "libx265", "hevc") and (width % 2 or height % 2):
        # x264/x265 refuse 4:2:0 with odd dimensions; 4:4:4 keeps the exact size.
        return "yuv444p"
    return "yuv420p"


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
            :mod:`actionclip.video` shows the frame rotated by this angle.
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
    fmt = container_format or muxer_for(path.suffix.lower())
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format=fmt) as container:
        stream = None
        for i, frame in enumerate(frames):
            frame = np.ascontiguousarray(frame, dtype=np.uint8)
            if frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frame {i} has shape {frame.shape}, expected [H, W, 3]")
            if stream is None:
                stream = add_video_stream(container, codec, rate, frame, pix_fmt, gop, options)
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


def muxer_for(suffix: str) -> str | None:
    return {".mkv": "matroska", ".webm": "webm", ".mov": "mov", ".mp4": "mp4", ".avi": "avi",
            ".gif": "gif", ".m4v": "mp4", ".ts": "mpegts"}.get(suffix)


def add_video_stream(container, codec, rate, frame, pix_fmt, gop, options):
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
