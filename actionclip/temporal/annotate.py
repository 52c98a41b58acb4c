"""Re-encode a video with the timeline's current decision drawn on every frame.

For each frame at time ``t`` the window whose centre is nearest ``t`` gives the label (or "none" when
it is background) and its score; Pillow draws it in a box at the top-left. The video is decoded once
more, streaming, and written with :func:`actionclip.video.write.write_video` (atomic: a temporary file
renamed at the end) at the source's nominal frame rate; audio is not copied.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


class Labeller:
    """Maps a time to the decision of the nearest window (vectorised lookup, no scan per frame)."""

    def __init__(self, result: Any) -> None:
        from actionclip.temporal.segments import top_labels

        self.centres = (np.asarray(result.starts) + np.asarray(result.ends)) / 2
        self.tops = top_labels(result.decision_scores, result.labels, float(result.settings["threshold"]))

    def __call__(self, t: float) -> tuple[str | None, float]:
        if not len(self.centres):
            return None, 0.0
        i = int(np.searchsorted(self.centres, t))
        if i == len(self.centres) or (i > 0 and t - self.centres[i - 1] <= self.centres[i] - t):
            i -= 1
        return self.tops[i]


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def draw_label(frame: np.ndarray, label: str | None, score: float, *, font: Any = None) -> np.ndarray:
    """Return a copy of ``frame`` (uint8 RGB) with ``label score`` in a box at the top-left."""
    from PIL import Image, ImageDraw

    h, w = frame.shape[:2]
    font = font or _font(max(10, h // 18))
    image = Image.fromarray(np.ascontiguousarray(frame))
    draw = ImageDraw.Draw(image, "RGBA")
    text = f"{label} {score:.2f}" if label else f"none ({score:.2f})"
    pad = max(2, h // 80)
    x0, y0, x1, y1 = draw.textbbox((pad * 2, pad * 2), text, font=font)
    draw.rectangle((x0 - pad, y0 - pad, min(w - 1, x1 + pad), y1 + pad), fill=(0, 0, 0, 170))
    draw.text((pad * 2, pad * 2), text, font=font, fill=(255, 255, 255) if label else (170, 170, 170))
    return np.asarray(image)


def annotate_video(video: str | os.PathLike, out: str | os.PathLike, result: Any, *, codec: str | None = None) -> Path:
    """Write ``out``: ``video`` with the decision of ``result`` (a TimelineResult) drawn on each frame."""
    from actionclip.errors import ActionCLIPError, VideoError
    from actionclip.video.decode import iter_frames, probe
    from actionclip.video.write import DEFAULT_CODECS, write_video

    out = Path(out)
    info = probe(video)
    labeller = Labeller(result)
    font = _font(max(10, info.height // 18))

    def frames() -> Iterator[np.ndarray]:
        for t, frame in iter_frames(video):
            yield draw_label(frame, *labeller(t), font=font)

    chosen = codec or DEFAULT_CODECS.get(out.suffix.lower(), "libx264")
    try:
        return write_video(out, frames(), fps=info.fps or 25, codec=chosen,
                           options={"preset": "veryfast"} if chosen == "libx264" else None)
    except ActionCLIPError:
        raise
    except Exception as exc:  # FFmpeg cannot mux/encode this: one line naming the output
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VideoError(f"{out}: cannot write the annotated video ({cause})") from None
