"""Live streams: real transports (an OS pipe, a local HTTP server that drops the connection), sources,
reconnection, real-time playback and the ``watch`` command (stdin pipe, Ctrl-C summary).

The arranged model (see tests/timeline_support.py) maps a frame's colour to one label, so each update
can be checked against what was on screen.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from timeline_support import LABELS, colour_video

from actionclip.errors import UsageError, VideoError
from actionclip.temporal.live import LiveSummary, LiveUpdate, watch
from actionclip.video.stream import parse_source

SCRIPT = [("red", 2.0), ("green", 2.0), ("grey", 2.0), ("blue", 2.0)]  # juggling, swimming, -, dancing
LIVE = dict(window=1.0, frames=4, every=0.5)


@pytest.fixture(scope="module")
def ts_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("live") / "script.ts"
    colour_video(path, SCRIPT, gop=5)
    return path, path.read_bytes()


def _story(updates: list[LiveUpdate]) -> list[str]:
    """The sequence of states shown, consecutive repeats and tie-windows at cuts removed."""
    states = []
    for u in updates:
        if len(u.detected) > 1:
            continue  # a window straddling a cut, half and half
        state = u.detected[0] if u.detected else "-"
        if not states or states[-1] != state:
            states.append(state)
    return states


def test_a_piped_stream_is_scored_as_it_arrives_each_frame_encoded_once(arranged, ts_bytes):
    m, calls = arranged
    _, data = ts_bytes
    r, w = os.pipe()

    def writer():
        with os.fdopen(w, "wb") as f:
            for i in range(0, len(data), 188 * 16):
                f.write(data[i : i + 188 * 16])
                f.flush()
                time.sleep(0.002)

    threading.Thread(target=writer, daemon=True).start()
    with os.fdopen(r, "rb") as pipe:
        updates = list(watch(m, pipe, LABELS, **LIVE))  # ends by itself at end of stream
    assert _story(updates) == ["juggling", "swimming", "-", "dancing"]
    times = [u.time for u in updates]
    # 10 fps thinned to 4 per second: frames on the nearest 0.1 s to a 0.25 s grid.
    assert all(b - a == pytest.approx(0.5, abs=0.101) for a, b in zip(times, times[1:]))
    assert times[0] == pytest.approx(0.75, abs=0.1) and times[-1] >= 7.5  # first full window, to the end
    assert all(u.frames == 4 and u.span == pytest.approx(0.75, abs=0.1) for u in updates)
    # 4 frames/s kept over 8 s, each encoded once; the naive way would encode 4 per update.
    assert calls["images"] == 32 < 4 * len(updates)
    assert all(u.reconnects == 0 and u.dropped == 0 and u.latency >= 0 for u in updates)
    grey = [u for u in updates if 4.8 <= u.time <= 5.8]
    assert grey and all(u.detected == [] and max(u.scores.values()) < 0.01 for u in grey)
    # The softmax still spreads over the labels even then: it cannot say "none".
    assert all(sum(u.probs.values()) == pytest.approx(1.0, abs=1e-4) for u in grey)


class _DroppingServer:
    """Serves an MPEG-TS byte stream over HTTP on 127.0.0.1, like a camera that hiccups:
    connection 1 sends the first part then drops; connection 2 resumes live from there to the end;
    later connections get 503 (the camera is gone)."""

    def __init__(self, data: bytes, cut: float = 0.45):
        self.data = data
        self.cut = (int(len(data) * cut) // 188) * 188  # on a TS packet boundary
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                server.connections += 1
                n = server.connections
                if n > 2:
                    self.send_error(503, "camera gone")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                part = server.data[: server.cut] if n == 1 else server.data[server.cut :]
                try:
                    for i in range(0, len(part), 188 * 8):
                        self.wfile.write(part[i : i + 188 * 8])
                        self.wfile.flush()
                        time.sleep(0.003)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/live.ts"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_http_stream_that_drops_is_reconnected_and_followed_to_the_end(arranged, ts_bytes):
    m, _ = arranged
    _, data = ts_bytes
    server = _DroppingServer(data)
    updates: list[LiveUpdate] = []
    try:
        with pytest.raises(VideoError, match=r"127\.0\.0\.1.*gave up after 3 attempt"):
            for update in watch(m, server.url, LABELS, backoff=0.05, max_retries=2, read_timeout=3, **LIVE):
                updates.append(update)
    finally:
        server.close()
    assert server.connections >= 3
    before = [u for u in updates if u.reconnects == 0]
    after = [u for u in updates if u.reconnects == 1]
    assert before and after
    assert _story(before)[0] == "juggling" and "dancing" not in _story(before)
    assert _story(after)[-1] == "dancing"  # the second half only came over the second connection
    times = [u.time for u in updates]
    assert times == sorted(times) and len(set(times)) == len(times)  # one clock across the drop
    assert after[0].time - before[-1].time < 2.0


def test_a_file_plays_at_real_time_and_latency_stays_low(arranged, tmp_path):
    m, _ = arranged
    path = tmp_path / "short.mp4"
    colour_video(path, [("red", 1.0), ("blue", 1.0)])
    t0 = time.monotonic()
    updates = list(watch(m, str(path), LABELS, window=0.5, frames=2, every=0.25))
    elapsed = time.monotonic() - t0
    assert elapsed >= 1.6  # 2 s of video, paced (the first frame shows at once)
    assert _story(updates) == ["juggling", "dancing"]
    assert max(u.latency for u in updates) < 0.5
    t0 = time.monotonic()
    fast = list(watch(m, str(path), LABELS, window=0.5, frames=2, every=0.25, realtime=False))
    assert time.monotonic() - t0 < elapsed and [u.time for u in fast] == pytest.approx([u.time for u in updates])


def test_sources_are_recognised_and_bad_ones_named(arranged, tmp_path):
    m, _ = arranged
    if sys.platform.startswith("linux"):
        cam = parse_source("0")
        assert (cam.kind, cam.target, cam.format, cam.live) == ("device", "/dev/video0", "v4l2", True)
        assert parse_source("/dev/video2", options={"video_size": "640x480"}).options == {"video_size": "640x480"}
    rtsp = parse_source("rtsp://admin:secret@10.0.0.5/stream1")
    assert rtsp.options["rtsp_transport"] == "tcp" and "secret" not in rtsp.name and rtsp.live
    assert parse_source("rtsp://h/s", options={"rtsp_transport": "udp"}).options["rtsp_transport"] == "udp"
    assert parse_source("udp://127.0.0.1:1234").options["overrun_nonfatal"] == "1"
    assert parse_source("-").kind == "stdin" and not parse_source("-").live
    with pytest.raises(VideoError, match="nope.mp4"):
        parse_source(str(tmp_path / "nope.mp4"))
    with pytest.raises(VideoError, match="directory"):
        parse_source(str(tmp_path))
    with pytest.raises(UsageError, match="stdin"):
        next(watch(m, "-", LABELS, reconnect=True))
    with pytest.raises(UsageError):
        next(watch(m, "-", LABELS, every=0))
    empty = tmp_path / "x.ts"
    empty.write_bytes(b"")
    with pytest.raises(UsageError, match=r"x\.ts: cannot open \(no container format 'nosuchfmt'\)"):
        next(watch(m, str(empty), LABELS, format="nosuchfmt"))  # a usage error: not retried
    # Nothing listens on this port: three quick attempts, then one line naming the URL.
    with pytest.raises(VideoError, match=r"http://127\.0\.0\.1:9/x\.ts: cannot open .*gave up after 3"):
        next(watch(m, "http://127.0.0.1:9/x.ts", LABELS, backoff=0.01, max_retries=2, **LIVE))


def test_summary_adds_up_detected_time_and_latency():
    summary = LiveSummary(["a", "b"])
    for i, detected in enumerate([["a"], ["a"], ["a"], [], ["b"]]):
        summary.add(LiveUpdate(time=float(i), labels=["a", "b"], probs={"a": 0.5, "b": 0.5},
                               scores={"a": 0.9 if "a" in detected else 0.1, "b": 0.8 if "b" in detected else 0.2},
                               top=[], detected=detected, arrival=0.0, latency=0.1 * (i + 1), frames=4, span=0.75,
                               reconnects=i // 3, dropped=0))
    d = summary.to_dict()
    assert d["updates"] == 5 and d["seconds"] == 4.0 and d["reconnects"] == 1
    assert d["labels"]["a"] == {"detected_seconds": 2.0, "peak": 0.9}  # the first update has no duration yet
    assert d["labels"]["b"] == {"detected_seconds": 1.0, "peak": 0.8}
    assert d["latency_max"] == pytest.approx(0.5) and d["latency_mean"] == pytest.approx(0.3)
    text = summary.format()
    assert text.splitlines()[1].split()[0] == "a" and "5 updates" in text


@pytest.mark.heavy
def test_watch_command_reads_stdin_and_stops_cleanly_on_ctrl_c(meanp_checkpoint, ts_bytes):
    ckpt = meanp_checkpoint
    _, data = ts_bytes
    proc = subprocess.Popen(
        [sys.executable, "-m", "actionclip", "watch", "-", "--model", str(ckpt), "--text", "juggling",
         "--text", "swimming", "--window", "1", "--frames", "4", "--every", "0.5", "--json", "--verbose"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # a hang below dumps every thread's stack
        # A terminal's Ctrl-C, even when the tests themselves run as a background job (whose children
        # inherit SIGINT ignored, and Python then installs no KeyboardInterrupt handler at all).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        proc.stdin.write(data[: len(data) // 2])  # half the stream, and the pipe stays open
        proc.stdin.flush()
        out_lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [out_lines.put(l) for l in proc.stdout], daemon=True).start()
        lines = []
        while len(lines) < 3:
            try:
                lines.append(json.loads(out_lines.get(timeout=60)))
            except queue.Empty:
                break
        assert len(lines) == 3, "no updates within 60 s"
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler prints where each thread is stuck
            proc.wait(timeout=10)
            pytest.fail("watch did not stop within 30 s of Ctrl-C:\n" + proc.stderr.read().decode()[-6000:])
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert [u["time"] for u in lines] == pytest.approx([0.75, 1.25, 1.75], abs=0.1)
    assert {x["label"] for x in lines[0]["top"]} == {"juggling", "swimming"}
    summary = json.loads(err.decode().strip().splitlines()[-1])["summary"]
    assert summary["updates"] >= 3 and set(summary["labels"]) == {"juggling", "swimming"}
