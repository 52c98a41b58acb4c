"""Follow a live stream: score a rolling window of the last few seconds every ``every`` seconds.

``watch(model, source, labels)`` is a generator of :class:`LiveUpdate`. A reader thread decodes the
source (:class:`actionclip.video.stream.FrameStream`: webcams, RTSP/HTTP/UDP, files at real time, stdin),
keeping ``T / window`` frames per second; the generator encodes each kept frame **once** as it
arrives, keeps the last T frame embeddings in a ring buffer, and every ``every`` seconds of source
time fuses them and scores the labels (softmax and independent scores, as in
:mod:`actionclip.temporal.timeline`). If encoding falls behind, the oldest waiting frames are dropped (counted
in ``dropped``) so the scores stay current. After a long outage the buffer is cleared so a window
never mixes footage from before and after it.

Closing the generator (``break``, ``.close()``, Ctrl-C in the caller) stops the reader thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from actionclip.errors import UsageError

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel


@dataclass
class LiveUpdate:
    """The scores of the window that ended at source time ``time``."""

    time: float  #: source clock of the newest frame in the window, seconds
    labels: list[str]
    probs: dict[str, float]  #: softmax over the labels given
    scores: dict[str, float]  #: independent per-label scores
    top: list[tuple[str, float]]  #: best ``top_k`` labels by the decision score, best first
    detected: list[str]  #: labels whose decision score reaches the threshold (empty: background)
    arrival: float  #: time.monotonic() when the newest frame of the window was decoded
    latency: float  #: seconds from that frame's arrival to these scores
    frames: int  #: frames in the window
    span: float  #: seconds between its first and last frame
    reconnects: int  #: reconnections of the source so far
    dropped: int  #: frames dropped so far because encoding could not keep up
    wall: float = field(default_factory=time.time)  #: time.time() of the scores

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": round(self.time, 3),
            "wall": round(self.wall, 3),
            "top": [{"label": l, "score": round(s, 4)} for l, s in self.top],
            "detected": self.detected,
            "probs": {k: round(v, 4) for k, v in self.probs.items()},
            "scores": {k: round(v, 4) for k, v in self.scores.items()},
            "latency": round(self.latency, 4),
            "frames": self.frames,
            "reconnects": self.reconnects,
            "dropped": self.dropped,
        }

    def format_line(self) -> str:
        """One human line: ``[00:12.0] running 0.91 | walking 0.40 | ...`` (``-`` when background)."""
        m, s = divmod(self.time, 60)
        head = f"[{int(m):02d}:{s:04.1f}]"
        tops = " | ".join(f"{l} {v:.2f}" for l, v in self.top)
        mark = "*" if self.detected else "-"
        return f"{head} {mark} {tops}"


class LiveSummary:
    """Accumulates updates into what a user wants after Ctrl-C: how long, what was seen, how fast."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self.updates = 0
        self.first: float | None = None
        self.last: float | None = None
        self.detected_seconds = {l: 0.0 for l in self.labels}
        self.peak = {l: 0.0 for l in self.labels}
        self.latencies: list[float] = []
        self.reconnects = 0
        self.dropped = 0
        self._prev_time: float | None = None

    def add(self, update: LiveUpdate, latency: float | None = None) -> None:
        self.updates += 1
        self.first = update.time if self.first is None else self.first
        self.last = update.time
        step = 0.0 if self._prev_time is None else max(0.0, update.time - self._prev_time)
        self._prev_time = update.time
        for label in update.detected:
            self.detected_seconds[label] += step
        decision = update.scores if update.scores else update.probs
        for label, value in decision.items():
            self.peak[label] = max(self.peak[label], value)
        self.latencies.append(update.latency if latency is None else latency)
        self.reconnects, self.dropped = update.reconnects, update.dropped

    def to_dict(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies) if self.latencies else np.zeros(1)
        return {
            "updates": self.updates,
            "seconds": round((self.last or 0.0) - (self.first or 0.0), 3),
            "reconnects": self.reconnects,
            "dropped_frames": self.dropped,
            "latency_mean": round(float(lat.mean()), 4),
            "latency_p95": round(float(np.percentile(lat, 95)), 4),
            "latency_max": round(float(lat.max()), 4),
            "labels": {l: {"detected_seconds": round(self.detected_seconds[l], 3), "peak": round(self.peak[l], 4)}
                       for l in self.labels},
        }

    def format(self) -> str:
        d = self.to_dict()
        lines = [f"watched {d['seconds']:.1f} s: {d['updates']} updates, {d['reconnects']} reconnects, "
                 f"{d['dropped_frames']} frames dropped; latency mean {d['latency_mean'] * 1000:.0f} ms, "
                 f"p95 {d['latency_p95'] * 1000:.0f} ms"]
        width = max((len(l) for l in self.labels), default=0)
        for label in sorted(self.labels, key=lambda l: -self.detected_seconds[l]):
            info = d["labels"][label]
            lines.append(f"  {label:<{width}}  detected {info['detected_seconds']:7.1f} s   peak {info['peak']:.2f}")
        return "\n".join(lines)


_END = object()


def _next_item(q: queue.Queue) -> Any:
    """``q.get()`` that wakes up now and then. Ctrl-C's SIGINT may be delivered to the reader thread
    (blocked in a read); the main thread, parked forever in a lock wait, would then never run the
    handler that raises KeyboardInterrupt. A short timeout makes it check for pending signals."""
    while True:
        try:
            return q.get(timeout=0.2)
        except queue.Empty:
            continue


def watch(
    model: VideoTextModel,
    source: Any,
    labels: Sequence[str] | str,
    *,
    templates: Sequence[str] | None = None,
    background: Sequence[str] | None = None,
    window: float = 4.0,
    frames: int | None = None,
    every: float = 1.0,
    score: str = "independent",
    threshold: float = 0.5,
    top_k: int = 3,
    batch_size: int = 8,
    queue_size: int = 32,
    **stream_options: Any,
) -> Generator[LiveUpdate, None, None]:
    """Score the last ``window`` seconds of a live ``source`` every ``every`` seconds.

    Args:
        model: a model from ``actionclip.load`` (or an ONNX export).
        source: webcam index or ``/dev/videoN``, a stream URL (rtsp/http/udp/...), a file (played at
            real time), ``"-"`` for stdin, or a binary file object; see :mod:`actionclip.video.stream`.
        labels: the actions, in words.
        templates, background: as for :func:`actionclip.temporal.timeline.timeline`.
        window: seconds covered by the T frames of each scored window.
        frames: T (default: the model's).
        every: seconds of source time between updates.
        score: ``"independent"`` (default) or ``"softmax"``: which score ``top`` and ``detected`` use.
        threshold: a label is ``detected`` when its decision score reaches this.
        top_k: labels listed in ``LiveUpdate.top``.
        batch_size: most frames encoded in one image-encoder call when several are waiting.
        queue_size: decoded frames that may wait for encoding before the oldest are dropped.
        stream_options: how the source is read (``realtime``, ``reconnect``, ``max_retries``,
            ``backoff``, ``max_backoff``, ``open_timeout``, ``read_timeout``, ``format``,
            ``options``): see :class:`actionclip.video.stream.FrameStream`.

    Yields:
        :class:`LiveUpdate`, first once T frames have arrived, then every ``every`` seconds.
    """
    from actionclip.temporal.frames import FrameEncoder
    from actionclip.temporal.windows import WindowScorer, check_score_kind
    from actionclip.video.stream import FrameStream

    check_score_kind(score)
    if not (every > 0 and window > 0):
        raise UsageError("every and window must be positive")
    t_frames = int(frames or model.num_frames)
    if t_frames < 1:
        raise UsageError(f"frames {t_frames}: must be at least 1")
    spacing = window / t_frames
    scorer = WindowScorer(model, labels, templates=templates, background=background)
    encoder = FrameEncoder(model, batch_size)
    stream = FrameStream(source, fps=1.0 / spacing, **stream_options)
    frames_q: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
    dropped = [0]

    def hand_over(item: Any) -> None:
        # Blocks while the queue is full, but never after the consumer has gone (it stops the stream
        # on the way out): a reader stuck on a full queue nobody drains would outlive the generator.
        while not stream.stopped:
            try:
                frames_q.put(item, timeout=0.1)
                return
            except queue.Full:
                pass

    def read() -> None:
        try:
            for frame in stream:
                while True:
                    try:
                        frames_q.put_nowait(frame)
                        break
                    except queue.Full:  # encoding is behind: the oldest frame matters least
                        try:
                            frames_q.get_nowait()
                            dropped[0] += 1
                        except queue.Empty:
                            pass
            hand_over(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            hand_over(exc)

    reader = threading.Thread(target=read, name="actionclip-watch-reader", daemon=True)
    reader.start()
    rolling = RollingWindow(scorer, encoder, frames=t_frames, window=window, every=every, score=score,
                            threshold=threshold, top_k=top_k)
    done = False
    try:
        while not done:
            batch = [_next_item(frames_q)]
            while len(batch) < encoder.batch_size:
                try:
                    batch.append(frames_q.get_nowait())
                except queue.Empty:
                    break
            items = []
            for item in batch:
                if item is _END:
                    done = True
                    break
                if isinstance(item, BaseException):
                    raise item
                items.append(item)
            if not items:
                continue
            embs = encoder.encode([encoder.preprocess(f.image) for f in items])
            for f, emb in zip(items, embs):
                update = rolling.add(f.t, f.arrival, emb, reconnects=stream.reconnects, dropped=dropped[0])
                if update is not None:
                    yield update
    finally:
        stream.stop()
        # Unblock a reader waiting on a full queue, then give it a moment to notice the stop.
        try:
            while True:
                frames_q.get_nowait()
        except queue.Empty:
            pass
        reader.join(timeout=2.0)


class RollingWindow:
    """The last T frame units of a live source, scored every ``every`` seconds of source time.

    What :func:`watch` keeps between frames, apart from where the frames come from: the server's
    WebSocket feeds it a browser's webcam frames the same way. ``add`` takes one encoded frame unit
    (:class:`~actionclip.temporal.frames.FrameEncoder`) and returns a :class:`LiveUpdate` when one
    is due. A gap longer than ``window`` clears the buffer, so a window never mixes footage from
    before and after an outage.
    """

    def __init__(self, scorer: Any, encoder: Any, *, frames: int, window: float, every: float, score: str,
                 threshold: float, top_k: int) -> None:
        self.scorer, self.encoder = scorer, encoder
        self.frames, self.window, self.every = int(frames), float(window), float(every)
        self.score, self.threshold, self.top_k = score, float(threshold), int(top_k)
        self.ring: deque[tuple[float, float, Any]] = deque(maxlen=self.frames)  # (t, arrival, frame unit)
        self.next_update: float | None = None

    def add(self, t: float, arrival: float, unit: Any, *, reconnects: int = 0, dropped: int = 0) -> LiveUpdate | None:
        """Add the frame unit shown at source time ``t`` (decoded at ``time.monotonic()`` ``arrival``)."""
        ring = self.ring
        if ring and t - ring[-1][0] > self.window:  # an outage: old frames no longer belong
            ring.clear()
        ring.append((t, arrival, unit))
        if len(ring) < self.frames or (self.next_update is not None and t + 1e-6 < self.next_update):
            return None
        every = self.every
        self.next_update = t + every if self.next_update is None else max(self.next_update + every, t + every / 2)
        return _score(self.scorer, self.encoder, ring, self.score, self.threshold, self.top_k, reconnects, dropped)


def _score(scorer: Any, encoder: Any, ring: deque, score: str, threshold: float, top_k: int, reconnects: int,
           dropped: int) -> LiveUpdate:
    times = [t for t, _, _ in ring]
    newest_arrival = ring[-1][1]
    probs, scores = scorer.score(encoder.stack([e for _, _, e in ring])[None])
    probs, scores = probs[0], scores[0]
    decision = scores if score == "independent" else probs
    order = np.argsort(-decision)
    labels = scorer.labels
    return LiveUpdate(
        time=times[-1],
        labels=labels,
        probs={l: float(p) for l, p in zip(labels, probs)},
        scores={l: float(s) for l, s in zip(labels, scores)},
        top=[(labels[i], float(decision[i])) for i in order[: max(1, top_k)]],
        detected=[labels[i] for i in order if decision[i] >= threshold],
        arrival=newest_arrival,
        latency=time.monotonic() - newest_arrival,
        frames=len(times),
        span=times[-1] - times[0],
        reconnects=reconnects,
        dropped=dropped,
    )
