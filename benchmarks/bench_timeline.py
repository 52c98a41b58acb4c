"""Benchmark: timeline of a long video (prints figures; not a test).

1. A generated 10-minute 720p H.264 video, stride 1 s, T=8, window 4 s: wall time, image-encoder
   passes against the naive per-window count (T per window), real-time factor.
2. Peak memory (max RSS) of a timeline over a 1-hour video, next to a 6-minute one, each in a fresh
   process: constant memory means the two are about equal. The long videos are low resolution to
   keep their generation quick; memory per frame is the same after preprocessing.

Usage::

    python benchmarks/bench_timeline.py                    # full-size random ViT-B/32 (default)
    python benchmarks/bench_timeline.py --size tiny        # quick smoke run
    python benchmarks/bench_timeline.py --minutes 2 --skip-memory

Weights are random (no pretrained weights are needed for speed); the work per frame is the real
model's. Generated videos are cached in --workdir between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

COLOURS = [(200, 40, 40), (40, 180, 60), (40, 60, 200), (128, 128, 128), (220, 200, 40)]


def make_video(path: Path, seconds: float, size: tuple[int, int], fps: int) -> Path:
    """Segments of 20-40 s of different colours with moving texture, streamed to the encoder."""
    if path.exists():
        return path
    from actionclip._dev.videos import write_video

    w, h = size
    xx = np.arange(w, dtype=np.float32)[None, :, None]
    yy = np.arange(h, dtype=np.float32)[:, None, None]
    rng = np.random.default_rng(0)
    bounds = np.cumsum(rng.uniform(20, 40, size=int(seconds / 20) + 2))
    # One second of moving texture per colour, computed once per segment and cycled: the encoder
    # sees real motion, and generation stays far cheaper than the benchmark itself.
    ripples = [25 * np.sin((xx + 7 * i) / 23.0) * np.cos((yy - 3 * i) / 31.0) for i in range(fps)]

    def frames():
        cached_seg, cycle = -1, []
        for i in range(int(seconds * fps)):
            seg = int(np.searchsorted(bounds, i / fps))
            if seg != cached_seg:
                base = np.array(COLOURS[seg % len(COLOURS)], dtype=np.float32)
                cycle = [np.clip(base + r, 0, 255).astype(np.uint8) for r in ripples]
                cached_seg = seg
            yield cycle[i % fps]

    write_video(path, frames(), fps=fps, options={"preset": "ultrafast"}, gop=2 * fps)
    return path


def checkpoint(workdir: Path, size: str) -> Path:
    from actionclip._dev.weights import write_checkpoint

    path = workdir / f"random-{size.replace('/', '')}.pt"
    return path if path.exists() else write_checkpoint(path, size=size, frames=8, fusion="Transf")


def run_timeline(ckpt: Path, video: Path, stride: float, window: float, frames: int, threads: int | None) -> dict:
    import torch

    import actionclip
    from actionclip.temporal.timeline import timeline

    if threads:
        torch.set_num_threads(threads)
    model = actionclip.load(ckpt)
    encode_seconds = [0.0]
    inner = model.encode_image

    def timed_encode(images):
        t0 = time.perf_counter()
        out = inner(images)
        encode_seconds[0] += time.perf_counter() - t0
        return out

    model.encode_image = timed_encode
    t0 = time.perf_counter()
    result = timeline(model, video, ["juggling", "swimming", "dancing", "archery"], window=window, stride=stride,
                      frames=frames)
    wall = time.perf_counter() - t0
    st = result.stats
    return {
        "video_seconds": round(st["duration"], 1),
        "wall_seconds": round(wall, 2),
        "realtime_factor": round(st["duration"] / wall, 2),
        "windows": st["windows"],
        "encoder_frames": st["frames_encoded"],
        "naive_encoder_frames": st["naive_frames_encoded"],
        "encoder_seconds": round(encode_seconds[0], 2),
        "encoder_ms_per_frame": round(1000 * encode_seconds[0] / max(1, st["frames_encoded"]), 2),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def child(args: argparse.Namespace) -> int:
    """Run one timeline in this (fresh) process and print its figures as JSON."""
    out = run_timeline(Path(args.child[0]), Path(args.child[1]), args.stride, args.window, args.frames, args.threads)
    print(json.dumps(out))
    return 0


def in_fresh_process(args: argparse.Namespace, ckpt: Path, video: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", str(ckpt), str(video), "--stride", str(args.stride),
           "--window", str(args.window), "--frames", str(args.frames)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="B/32", choices=("tiny", "B/32", "B/16"), help="random model size")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the 720p video")
    p.add_argument("--stride", type=float, default=1.0)
    p.add_argument("--window", type=float, default=4.0)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--fps", type=int, default=25, help="frame rate of the 720p video")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--memory-model", default="tiny", choices=("tiny", "B/32"), help="model for the memory runs")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "actionclip-bench-timeline"))
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    video = make_video(work / f"720p-{args.minutes:g}min-{args.fps}fps.mp4", args.minutes * 60, (1280, 720), args.fps)
    print(f"video: {video} ({video.stat().st_size / 1e6:.1f} MB; ready in {time.perf_counter() - t0:.0f} s)")
    ckpt = checkpoint(work, args.size)
    r = in_fresh_process(args, ckpt, video)
    print(f"\ntimeline, {args.minutes:g} min 720p @ {args.fps} fps, random {args.size}, window {args.window:g} s, "
          f"stride {args.stride:g} s, T={args.frames}:")
    print(f"  wall time            {r['wall_seconds']:.1f} s for {r['video_seconds']:.0f} s of video "
          f"-> {r['realtime_factor']:.2f}x real time")
    print(f"  image-encoder passes {r['encoder_frames']} (naive: {r['naive_encoder_frames']} = "
          f"{r['windows']} windows x {args.frames}; {r['naive_encoder_frames'] / max(1, r['encoder_frames']):.1f}x fewer)")
    print(f"  encoder time         {r['encoder_seconds']:.1f} s ({r['encoder_ms_per_frame']:.1f} ms/frame); "
          f"the rest is decoding {args.fps} fps of 720p + preprocessing + fusion")
    naive_est = r["naive_encoder_frames"] * r["encoder_ms_per_frame"] / 1000
    print(f"  naive encoder time   ~{naive_est:.0f} s (estimated from the measured ms/frame)")
    print(f"  max RSS              {r['max_rss_mb']:.0f} MB")

    if not args.skip_memory:
        mem_ckpt = checkpoint(work, args.memory_model)
        rows = []
        for minutes in (6, 60):
            v = make_video(work / f"lowres-{minutes}min.mp4", minutes * 60, (320, 180), 10)
            rows.append((minutes, in_fresh_process(args, mem_ckpt, v)))
        print(f"\npeak memory (max RSS of a fresh process), 320x180 @ 10 fps, random {args.memory_model}:")
        for minutes, m in rows:
            print(f"  {minutes:3d} min video: {m['max_rss_mb']:.0f} MB  ({m['wall_seconds']:.0f} s, "
                  f"{m['realtime_factor']:.1f}x real time, {m['encoder_frames']} frames encoded)")
        print(f"  growth from 6 min to 60 min: {rows[1][1]['max_rss_mb'] - rows[0][1]['max_rss_mb']:+.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
