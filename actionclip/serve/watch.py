"""``/v1/watch``: a browser's webcam over a WebSocket, scored like ``actionclip watch``.

The protocol, one connection per viewer:

1. the client sends a JSON text message with its settings: ``{"labels": [...], "templates": [...],
   "background": [...], "window": 4, "every": 1, "score": "independent", "threshold": 0.5,
   "top_k": 3}`` (only ``labels`` is required);
2. the server answers ``{"type": "ready", "frames": T, "fps": T / window, ...}``: the rate at
   which frames are worth sending;
3. the client sends binary messages: an 8-byte little-endian float64 timestamp (seconds, its own
   clock) followed by one JPEG image;
4. the server keeps the last ``window`` seconds (T frames, each encoded once as it arrives) and every
   ``every`` seconds of client time sends ``{"type": "update", ...}`` with
   :meth:`~actionclip.temporal.live.LiveUpdate.to_dict`'s fields.

A frame that cannot be used gets ``{"type": "error", "error": ...}`` and the session goes on; bad
settings close the connection after that message. Frames closer together than the window's frame
spacing are skipped before decoding, so a client sending too fast costs little. The scoring is the
library's: :class:`~actionclip.temporal.frames.FrameEncoder`, :class:`~actionclip.temporal.windows
.WindowScorer` and :class:`~actionclip.temporal.live.RollingWindow`, as in ``actionclip watch``.
"""

from __future__ import annotations

import io
import json
import math
import struct
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from actionclip.errors import ActionCLIPError
from actionclip.serve.params import Fields
from actionclip.serve.problems import Problem, as_problem

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel

__all__ = ["LiveSession", "run_watch", "WATCH_FIELDS"]

WATCH_FIELDS = ("labels", "templates", "background", "window", "every", "score", "threshold", "top_k")
_MAX_PIXELS = 4096 * 4096
_STAMP = struct.Struct("<d")


class LiveSession:
    """One viewer's rolling window; ``add_jpeg`` is blocking (run it in the worker pool)."""

    def __init__(self, model: VideoTextModel, settings: Mapping[str, Any], default_templates: list[str] | None = None) -> None:
        from actionclip.choices import SCORE_KINDS
        from actionclip.temporal.frames import FrameEncoder
        from actionclip.temporal.live import RollingWindow
        from actionclip.temporal.windows import WindowScorer

        fields = Fields({k: [str(x) for x in (v if isinstance(v, list) else [v])] for k, v in settings.items()},
                        WATCH_FIELDS)
        labels = fields.texts("labels")
        if not labels:
            raise Problem(400, "no labels: send {\"labels\": [...]} first")
        self.window = fields.number("window", 4.0, 0.0, 600.0, open_low=True)
        every = fields.number("every", 1.0, 0.0, 600.0, open_low=True)
        score = fields.choice("score", SCORE_KINDS[0], SCORE_KINDS)
        self.frames = int(model.num_frames)
        self.spacing = self.window / self.frames
        self.model = model
        self.scorer = WindowScorer(model, labels, templates=fields.texts("templates") or default_templates,
                                   background=fields.texts("background"))
        self.encoder = FrameEncoder(model, batch_size=1)
        self.rolling = RollingWindow(self.scorer, self.encoder, frames=self.frames, window=self.window,
                                     every=every, score=score, threshold=fields.number("threshold", 0.5, 0.0, 1.0),
                                     top_k=fields.integer("top_k", 3, 1, 1000))
        self.every = every
        self.skipped = 0
        self._last: float | None = None

    def ready(self) -> dict[str, Any]:
        return {"type": "ready", "labels": self.scorer.labels, "frames": self.frames, "window": self.window,
                "every": self.every, "fps": self.frames / self.window}

    def wants(self, t: float) -> bool:
        """Whether a frame at client time ``t`` is worth decoding (see the module notes)."""
        if self._last is not None and self._last <= t < self._last + 0.75 * self.spacing:
            self.skipped += 1
            return False
        return True

    def add_jpeg(self, t: float, data: bytes, arrival: float) -> dict[str, Any] | None:
        """Decode, encode and add one frame; the update's JSON when one is due."""
        import numpy as np
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > _MAX_PIXELS:
                    raise Problem(400, f"frame of {image.width}x{image.height} pixels is too large")
                rgb = np.array(image.convert("RGB"))  # a writable copy: torch refuses read-only arrays
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise Problem(400, f"frame at t={t:g}: not a readable JPEG image ({exc})") from None
        self._last = t
        unit = self.encoder.encode([self.encoder.preprocess(rgb)])[0]
        update = self.rolling.add(t, arrival, unit, dropped=self.skipped)
        return None if update is None else {"type": "update", **update.to_dict()}


async def run_watch(websocket: Any, engine: Any) -> None:
    """Serve one accepted WebSocket until the client leaves (see the module notes)."""
    from starlette.websockets import WebSocketDisconnect

    async def send_error(exc: BaseException) -> None:
        await websocket.send_text(json.dumps({"type": "error", "error": as_problem(exc).message}))

    try:
        first = await websocket.receive()
        if first["type"] == "websocket.disconnect":
            return
        try:
            settings = json.loads(first.get("text") or "null")
            if not isinstance(settings, dict):
                raise Problem(400, "the first message must be a JSON object of settings")
            session = await engine.pool.run(LiveSession, engine.model, settings, engine.templates)
        except (ValueError, ActionCLIPError, Problem) as exc:
            if isinstance(exc, ValueError) and not isinstance(exc, ActionCLIPError):
                exc = Problem(400, f"the first message must be JSON settings ({exc})")
            await send_error(exc)
            await websocket.close(code=1008)
            return
        await websocket.send_text(json.dumps(session.ready()))
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            arrival = time.monotonic()
            data = message.get("bytes")
            if not data or len(data) <= _STAMP.size:
                await send_error(Problem(400, "a frame is a binary message: an 8-byte timestamp, then a JPEG image"))
                continue
            (t,) = _STAMP.unpack_from(data)
            if not math.isfinite(t):
                await send_error(Problem(400, f"frame timestamp {t}: not a finite number of seconds"))
                continue
            if not session.wants(t):
                continue
            try:
                update = await engine.pool.run(session.add_jpeg, t, data[_STAMP.size:], arrival)
            except (ActionCLIPError, Problem) as exc:
                await send_error(exc)
                continue
            if update is not None:
                await websocket.send_text(json.dumps(update))
    except WebSocketDisconnect:
        return
