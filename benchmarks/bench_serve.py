"""Benchmark: ``actionclip serve`` under 1, 8 and 32 concurrent clients (prints figures; not a test).

Three ways to classify the same videos with the same labels:

1. **one at a time**, in this process: ``model.classify(video, labels, label_embeddings=...)`` in a
   loop (the labels embedded once), the library's plain path;
2. **the server without batching** (``--batch-size 1``): concurrency overlaps decoding with encoding,
   but each request is its own encoder pass;
3. **the server with dynamic batching** (its defaults: up to 4 views per pass on a CPU, 10 ms wait).

For each: requests/s and the p50/p95 latency of a request as its client sees it (upload, decode,
queue, encode, answer). The server runs in a child process on a loopback port; clients are threads
of this process using the stdlib client (:mod:`actionclip.serve.client`), one connection per request.

Usage::

    python benchmarks/bench_serve.py                 # full-size random ViT-B/32, dtype auto (bf16 on AMX)
    python benchmarks/bench_serve.py --size tiny     # quick smoke run

Weights are random (the work per video is the real model's). Videos: the first 16 clips of
../shared/data/clips when present (real files, real decoding), else generated 320x240 clips.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LABELS = ["arm wrestling", "shaking hands", "push up", "dancing", "archery", "abseiling", "playing guitar",
          "running", "walking", "swimming"]


def videos(workdir: Path, count: int = 16) -> list[Path]:
    shared = REPO.parent / "shared" / "data" / "clips"
    found = sorted(p for p in shared.rglob("*") if p.suffix.lower() in (".mp4", ".avi", ".webm", ".mkv"))
    if len(found) >= count:
        return found[:count]
    from actionclip._dev.videos import make_test_video

    return [make_test_video(workdir / f"clip{i}.mp4", seconds=2 + i % 4, size=(320, 240), fps=25)
            if not (workdir / f"clip{i}.mp4").exists() else workdir / f"clip{i}.mp4" for i in range(count)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc; NaN elsewhere). Less swayed
    than wall time by other work on a shared machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Measure:
    """Latencies and wall time of one configuration, summed over the rounds it ran in."""

    def __init__(self, mode: str, clients: int) -> None:
        self.mode, self.clients = mode, clients
        self.latencies: list[float] = []
        self.wall = 0.0
        self.cpu = 0.0  # CPU seconds of the process that served the requests
        self.items = self.passes = 0

    def row(self) -> dict:
        lat = self.latencies
        return {"mode": self.mode, "clients": self.clients, "requests": len(lat), "rps": len(lat) / self.wall,
                "p50": statistics.median(lat), "p95": percentile(lat, 0.95), "cpu": self.cpu / len(lat),
                "batch": f"{self.items / self.passes:.1f}" if self.passes else "1"}


class Library:
    """One at a time, in this process: the labels embedded once, then ``model.classify`` per video."""

    def __init__(self, checkpoint: Path, dtype: str, clips: list[Path]) -> None:
        import actionclip

        self.model = actionclip.load(checkpoint, dtype=dtype)
        self.label_emb = self.model.encode_labels(LABELS)
        self.clips = clips
        self.model.classify(clips[0], LABELS, label_embeddings=self.label_emb)  # warm-up

    def run(self, measure: Measure, first: int, count: int) -> None:
        # In a worker thread, as the server runs its model: on this machine, under load, decoding and
        # encoding in the main thread measured 1.5-4x slower than the same loop in a worker thread.
        with cf.ThreadPoolExecutor(1) as thread:
            thread.submit(self._run, measure, first, count).result()

    def _run(self, measure: Measure, first: int, count: int) -> None:
        cpu0 = cpu_seconds(os.getpid())
        t0 = time.perf_counter()
        for i in range(first, first + count):
            start = time.perf_counter()
            self.model.classify(self.clips[i % len(self.clips)], LABELS, label_embeddings=self.label_emb)
            measure.latencies.append(time.perf_counter() - start)
        measure.wall += time.perf_counter() - t0
        measure.cpu += cpu_seconds(os.getpid()) - cpu0

    def encoder_rates(self, batches: tuple[int, ...], seconds: float = 4.0) -> dict[int, float]:
        """Videos/s of ``encode_video`` alone at each batch size: what batching can gain at most."""
        import torch

        pixels = torch.stack([self.model.views(clip) for clip in self.clips[:max(batches)]])[:, 0]

        def rate(b: int) -> float:
            with torch.no_grad():
                self.model.encode_video(pixels[:b])
                t0, n = time.perf_counter(), 0
                while time.perf_counter() - t0 < seconds:
                    self.model.encode_video(pixels[:b])
                    n += b
                return n / (time.perf_counter() - t0)

        with cf.ThreadPoolExecutor(1) as thread:
            return {b: thread.submit(rate, b).result() for b in batches}


class Server:
    """``actionclip serve`` in a child process, driven by ``clients`` threads."""

    def __init__(self, checkpoint: Path, dtype: str, clips: list[Path], batch_size: int | None) -> None:
        from actionclip._dev.serving import ServerProcess
        from actionclip.serve.client import ServeClient

        args = ["--model", checkpoint, "--dtype", dtype, "--queue-size", "256"]
        if batch_size:
            args += ["--batch-size", str(batch_size)]
        self.process = ServerProcess(args, env={"ACTIONCLIP_SERVE_TOKEN": ""}).start()
        self.client = ServeClient(self.process.url, timeout=600)
        self.clips = clips
        for clip in clips[:2]:  # warm-up: label embeddings, weight packing
            self.client.classify(clip, LABELS)

    def run(self, measure: Measure, first: int, count: int) -> None:
        before = self.client.get("/v1/stats")["batching"]

        def one(i: int) -> float:
            start = time.perf_counter()
            self.client.classify(self.clips[i % len(self.clips)], LABELS)
            return time.perf_counter() - start

        pid = self.process.proc.pid
        cpu0 = cpu_seconds(pid)
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(measure.clients) as pool:
            measure.latencies += list(pool.map(one, range(first, first + count)))
        measure.wall += time.perf_counter() - t0
        measure.cpu += cpu_seconds(pid) - cpu0
        after = self.client.get("/v1/stats")["batching"]
        measure.passes += after["batches"] - before["batches"]
        measure.items += after["items"] - before["items"]

    def close(self) -> None:
        self.process.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="B/32", choices=["tiny", "B/32", "B/16"])
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the request counts")
    parser.add_argument("--rounds", type=int, default=3, help="turns each configuration takes (default 3)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "actionclip-bench-serve")
    args = parser.parse_args()

    from actionclip import runtime
    from actionclip._dev.weights import write_checkpoint

    args.workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = args.workdir / f"random-{args.size.replace('/', '')}.pt"
    if not checkpoint.exists():
        write_checkpoint(checkpoint, format="actionclip", size=args.size)
    clips = videos(args.workdir)
    levels = {c: max(c, int(n * args.scale)) for c, n in ((1, 24), (8, 48), (32, 96))}
    choice = runtime.resolve("auto", args.dtype)
    print(f"{args.size} random weights, {choice.device} {choice.dtype}; {runtime.cpu_info().describe()}; "
          f"{len(clips)} videos, {len(LABELS)} labels", file=sys.stderr, flush=True)

    # The three configurations take turns, a few rounds each, so that a change in the machine's load
    # (it is shared) falls on all of them alike rather than on whichever ran last.
    library = Library(checkpoint, args.dtype, clips)
    encoder = library.encoder_rates((1, 2, 4, 8))
    plain = Server(checkpoint, args.dtype, clips, batch_size=1)
    batched = Server(checkpoint, args.dtype, clips, batch_size=None)
    measures = {("library", 1): Measure("one at a time (library)", 1)}
    for c in levels:
        measures[("plain", c)] = Measure("server, no batching (--batch-size 1)", c)
        measures[("batched", c)] = Measure("server, dynamic batching (defaults)", c)
    try:
        for r in range(args.rounds):
            for c, total in levels.items():
                count = max(c, total // args.rounds)
                if c == 1:
                    library.run(measures[("library", 1)], r * count, count)
                plain.run(measures[("plain", c)], r * count, count)
                batched.run(measures[("batched", c)], r * count, count)
            print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    finally:
        plain.close()
        batched.close()
    order = [("library", 1)] + [(kind, c) for kind in ("plain", "batched") for c in levels]
    rows = [measures[key].row() for key in order]

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average at the end: {load:.1f} on {os.cpu_count()} cores (other work on the machine slows "
          "every configuration; they take turns so that it falls on all alike)")
    base = rows[0]["rps"]
    print("\n| mode | clients | requests | requests/s | vs one at a time | p50 | p95 | videos per encoder pass "
          "| CPU s per request |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['clients']} | {r['requests']} | {r['rps']:.2f} | {r['rps'] / base:.2f}x | "
              f"{r['p50'] * 1000:.0f} ms | {r['p95'] * 1000:.0f} ms | {r['batch'] or '1'} | {r['cpu']:.2f} |")
    print("\nencoder alone (encode_video, in-process): "
          + ", ".join(f"batch {b}: {v:.2f} videos/s ({v / encoder[1]:.2f}x)" for b, v in encoder.items()))
    batched = {r["clients"]: r["rps"] for r in rows if "dynamic" in r["mode"]}
    unbatched = {r["clients"]: r["rps"] for r in rows if "no batching" in r["mode"]}
    cpu = {(r["mode"], r["clients"]): r["cpu"] for r in rows}
    print("\nbatching gain at 8 / 32 clients: "
          + " / ".join(f"{batched[c] / unbatched[c]:.2f}x" for c in (8, 32))
          + " in requests/s; CPU per request "
          + " / ".join(f"{cpu[(rows[-1]['mode'], c)] / cpu[(rows[1]['mode'], c)]:.2f}x" for c in (8, 32)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
