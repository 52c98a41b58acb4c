"""The indexed videos, as a browser needs them: addressed by an id, a thumbnail per moment, a playable file.

Nothing a client sends ever becomes a file-system path. Each video of the index gets an *id*: the
first 16 hex digits of the SHA-256 of its indexed path (stable across restarts, so thumbnails and
bookmarks stay valid); a request names an id, which is looked up in the table of the index's own
rows (:class:`MediaLibrary`); an id not in that table, or not 16 hex digits, is a 404.

Browsers play few formats. Chromium plays H.264, VP9 and AV1 in MP4 and VP8/VP9/AV1 in WebM, but
no AVI (most UCF-101 and HMDB-51 clips: MPEG-4 part 2 in AVI) and not every Matroska file; a file
it cannot play shows a black player at 0:00 and no error. :func:`browser_playable` decides from the
container and codec (probed here, not guessed by the page), and :meth:`MediaLibrary.preview` makes
the others a playable copy: H.264 (libx264) in MP4, scaled to at most :data:`PREVIEW_HEIGHT` rows,
at most ``max_seconds`` long (the server's ``--max-duration``), no audio: enough to see the moment,
and small (about 1-2 MB a minute), so a cache of :data:`CACHE_BYTES` holds hundreds. Previews and
thumbnails are made on demand, written atomically into the cache folder, and made once: two requests
for the same preview wait for one transcode (a lock per file). Past :data:`CACHE_BYTES` the least
recently used files are deleted.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

from actionclip.serve.problems import Problem

__all__ = ["video_id", "MediaLibrary", "browser_playable", "transcode_preview", "PREVIEW_HEIGHT", "CACHE_BYTES",
           "THUMB_WIDTH"]

PREVIEW_HEIGHT = 360  # rows: a result's moment is judged at this size; more only costs transcode time
THUMB_WIDTH = 320  # pixels: a grid cell is about 240 CSS px wide, so 320 stays sharp on most screens
CACHE_BYTES = 2 << 30  # previews + thumbnails kept, in bytes (about 1,000 one-minute previews)
_ID = re.compile(r"[0-9a-f]{16}")

# container (FFmpeg demuxer names) -> codecs Chromium decodes in it (pixel formats checked apart)
_PLAYABLE = {"mp4": {"h264", "vp9", "av1"}, "webm": {"vp8", "vp9", "av1"}}
_PIXELS = {"yuv420p", "yuvj420p"}


def video_id(path: str) -> str:
    """The id of an indexed video: 16 hex digits of the SHA-256 of its indexed (resolved) path."""
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def browser_playable(path: str | os.PathLike) -> bool:
    """Whether Chromium plays ``path`` as it is: H.264/VP9/AV1 in MP4 or VP8/VP9/AV1 in WebM, 8-bit
    4:2:0. False for anything else, and for files PyAV cannot open (a preview will say why)."""
    import av

    try:
        with av.open(os.fspath(path)) as container:
            names = set(container.format.name.split(","))
            stream = container.streams.video[0] if container.streams.video else None
            if stream is None:
                return False
            codec = stream.codec_context.name
            pix = stream.codec_context.format.name if stream.codec_context.format else None
    except (av.FFmpegError, OSError, IndexError):
        return False
    if "mp4" in names:
        kind = "mp4"
    elif "webm" in names and Path(path).suffix.lower() == ".webm":  # Matroska in general: not reliably
        kind = "webm"
    else:
        return False
    return codec in _PLAYABLE[kind] and (pix is None or pix in _PIXELS)


def transcode_preview(source: str | os.PathLike, target: str | os.PathLike, *, max_seconds: float = 600.0,
                      height: int = PREVIEW_HEIGHT) -> None:
    """Write ``target``: ``source``'s video as H.264 MP4, at most ``height`` rows and ``max_seconds``
    long, without audio. Raises the library's one-line error when ``source`` cannot be decoded."""
    import av

    from actionclip.errors import VideoError

    name = os.fspath(source)
    try:
        with av.open(name) as src:
            if not src.streams.video:
                raise VideoError(f"{name}: no video stream")
            stream = src.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.guessed_rate or stream.base_rate or stream.average_rate or Fraction(25)
            rate = Fraction(rate).limit_denominator(1001)
            if not 1 <= rate <= 120:
                rate = Fraction(25)
            w, h = stream.codec_context.width, stream.codec_context.height
            if not (w and h):
                raise VideoError(f"{name}: the video stream has no frame size")
            scale = min(1.0, height / h)
            ow, oh = max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2)
            with av.open(os.fspath(target), "w", format="mp4", options={"movflags": "+faststart"}) as out:
                enc = out.add_stream(_h264(), rate=rate)
                enc.width, enc.height, enc.pix_fmt = ow, oh, "yuv420p"
                enc.options = {"crf": "28", "preset": "veryfast"} if enc.codec_context.name == "libx264" else {}
                last = -1
                for frame in src.decode(stream):
                    # Frames come in presentation order, but AVI's timestamps are often wrong (packed
                    # B-frames): number them at the stream's constant rate from the first one's time.
                    if last < 0:
                        last = int(round((frame.time or 0.0) * rate)) - 1
                    last += 1
                    if last / rate > max_seconds:
                        break
                    picture = frame.reformat(width=ow, height=oh, format="yuv420p")
                    picture.pts, picture.time_base = last, 1 / rate
                    out.mux(enc.encode(picture))
                if last < 0:
                    raise VideoError(f"{name}: no frame could be decoded")
                out.mux(enc.encode(None))
    except av.FFmpegError as exc:
        raise VideoError(f"{name}: cannot make a preview ({exc.strerror or exc})") from None


def _h264() -> str:
    """The H.264 encoder this PyAV's FFmpeg has: libx264 (PyAV's wheels), else OpenH264."""
    import av

    for name in ("libx264", "libopenh264", "h264"):
        try:
            av.codec.Codec(name, "w")
            return name
        except (av.FFmpegError, ValueError):
            continue
    from actionclip.errors import VideoError

    raise VideoError("this PyAV has no H.264 encoder: previews of unplayable videos are not available")


class MediaLibrary:
    """The videos a server may show, by id, with their thumbnails and previews under ``cache_dir``."""

    def __init__(self, paths: Iterable[str], cache_dir: str | os.PathLike, *, max_seconds: float = 600.0,
                 cache_bytes: int = CACHE_BYTES) -> None:
        self.cache_dir = Path(cache_dir)
        self.max_seconds = float(max_seconds) or 600.0
        self.cache_bytes = int(cache_bytes)
        self._paths: dict[str, str] = {}
        self._playable: dict[str, bool] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.transcodes = 0  # previews made by this process (tests check a second request made none)
        self.update(paths)

    def update(self, paths: Iterable[str]) -> None:
        """Add videos (their indexed paths) to the library."""
        with self._guard:
            for path in paths:
                self._paths[video_id(path)] = path

    def __len__(self) -> int:
        return len(self._paths)

    def path(self, vid: str) -> Path:
        """The file of the video ``vid``; 404 when ``vid`` is not one of the index's ids or the file is gone."""
        path = self._paths.get(vid) if isinstance(vid, str) and _ID.fullmatch(vid) else None
        if path is None:
            raise Problem(404, "no such video in this index")
        if not os.path.isfile(path):
            raise Problem(404, "this video's file is no longer on the server")
        return Path(path)

    def playable(self, vid: str) -> bool:
        """Whether a browser plays the original (probed once per video)."""
        if vid not in self._playable:
            self._playable[vid] = browser_playable(self.path(vid))
        return self._playable[vid]

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _stamp(self, path: Path) -> str:
        st = path.stat()
        return f"{st.st_size:x}-{st.st_mtime_ns:x}"  # a replaced file gets new cache entries

    def preview(self, vid: str) -> Path:
        """A playable MP4 of video ``vid`` (made once, then read from the cache). Blocking."""
        source = self.path(vid)
        target = self.cache_dir / "previews" / f"{vid}-{self._stamp(source)}.mp4"
        return self._cached(target, lambda tmp: transcode_preview(source, tmp, max_seconds=self.max_seconds),
                            count=True)

    def thumbnail(self, vid: str, at: float) -> Path:
        """A JPEG of video ``vid`` at ``at`` seconds (rounded to 0.1 s), at most :data:`THUMB_WIDTH` wide."""
        source = self.path(vid)
        tenths = max(0, int(round(float(at) * 10)))
        target = self.cache_dir / "thumbnails" / f"{vid}-{self._stamp(source)}-{tenths}.jpg"
        return self._cached(target, lambda tmp: tmp.write_bytes(_frame_jpeg(source, tenths / 10)))

    def _cached(self, target: Path, make, count: bool = False) -> Path:
        if target.is_file():
            os.utime(target)  # recently used: pruned last
            return target
        from actionclip.files import atomic_path

        with self._lock(target.name):
            if target.is_file():  # made while this request waited for the lock
                return target
            with atomic_path(target) as tmp:
                make(tmp)
            if count:
                self.transcodes += 1
        self._prune()
        return target

    def _prune(self) -> None:
        """Delete the least recently used cache files while the cache holds more than ``cache_bytes``."""
        files = [p for p in self.cache_dir.glob("*/*") if p.is_file() and not p.name.startswith(".")]
        stats = [(p, p.stat()) for p in files]
        total = sum(st.st_size for _, st in stats)
        for p, st in sorted(stats, key=lambda item: item[1].st_mtime):
            if total <= self.cache_bytes:
                break
            try:
                p.unlink()
                total -= st.st_size
            except OSError:
                pass


def _frame_jpeg(path: Path, at: float) -> bytes:
    """The frame shown at ``at`` seconds (the last one when ``at`` is past the end), as a JPEG."""
    import av

    from actionclip.errors import VideoError

    try:
        with av.open(os.fspath(path)) as container:
            stream = container.streams.video[0]
            if at > 0 and stream.time_base:
                # seek to the keyframe before the moment, then decode forward to it
                container.seek(int(at / stream.time_base), stream=stream, backward=True, any_frame=False)
            chosen = None
            for frame in container.decode(stream):
                chosen = frame
                if frame.time is None or frame.time >= at:
                    break
    except (av.FFmpegError, OSError, IndexError) as exc:
        raise VideoError(f"{path}: cannot read a frame ({getattr(exc, 'strerror', None) or exc})") from None
    if chosen is None:
        raise VideoError(f"{path}: no frame at {at:g} s")
    image = chosen.to_image()
    image.thumbnail((THUMB_WIDTH, THUMB_WIDTH * 4))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()
