"""Decoding ahead of the model: how it overlaps, how it scales with cores, what a folder costs.

Three tables, each asked for by a flag (``--all``: every one):

``--overlap``
    Items that each wait 0.1 s (as decoding waits on FFmpeg) with 0, 1, 2, 4 thread workers: the
    ideal is 0.8 / workers seconds. Checks the bookkeeping of :func:`actionclip.pipeline.prefetch`.
``--decode``
    Decode + sample + crop of ``--clips`` (default the shared clips) by 1 .. ``--workers`` *threads*
    and by as many worker *processes* (:mod:`actionclip.workers`), interleaved, ``--repeats`` times,
    medians. Goal (issue 17): 2 processes >= 1.8x one on a 2-core machine.
``--classify``
    ``actionclip classify`` on the clip folder with a random full-size checkpoint (``--size``,
    default B/32) in a fresh interpreter, with this checkout's code and with ``--before CHECKOUT``'s
    (e.g. the main branch), interleaved, medians of ``--repeats``. Goal: no slower than before.

On a shared machine figures move with the load: the load average is printed with each table.

    python benchmarks/bench_pipeline.py --all [--before /path/to/main] [--clips DIR] [--repeats 3]
    python benchmarks/bench_pipeline.py --decode --dry-run     # tiny, for the tests
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "clips"


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def overlap() -> None:
    from actionclip.pipeline import prefetch

    print("| workers | 8 x 0.1 s items | ideal |")
    print("|---|---|---|")
    for workers in (0, 1, 2, 4):
        start = time.perf_counter()
        list(prefetch(lambda _: time.sleep(0.1), range(8), workers=workers))
        ideal = 0.8 / max(1, workers)
        print(f"| {workers} | {time.perf_counter() - start:.3f} s | {ideal:.3f} s |")


def _clips(folder: str | None, tmp: Path, dry_run: bool) -> list[Path]:
    root = Path(folder) if folder else SHARED
    found = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".mp4", ".avi", ".mkv", ".gif")) \
        if root.is_dir() and not dry_run else []
    if not found:
        from actionclip._dev.videos import make_test_video

        found = [make_test_video(tmp / f"v{i}.mp4", seconds=1, size=(96, 64)) for i in range(6)]
    return found


def decode(clips: list[Path], most: int, repeats: int, resolution: int) -> None:
    from actionclip.pipeline import PrepareViews, prefetch
    from actionclip.video.preprocess import Preprocessing
    from actionclip.video.views import VideoViews
    from actionclip.workers import warm_up

    prepare = PrepareViews(VideoViews(Preprocessing(resolution), 8, torch=True), 8)
    warm_up(most)
    list(prefetch(prepare, clips, workers=most, processes=True))  # fork server up, files in the page cache
    counts = sorted({1, 2, most} | {n for n in (4, 8, 16) if n < most})
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(repeats):
        for workers in counts:
            for kind in ("threads", "processes"):
                start = time.perf_counter()
                for clip, result in prefetch(prepare, clips, workers=workers, processes=kind == "processes"):
                    if isinstance(result, BaseException):
                        raise SystemExit(f"bench_pipeline: {clip}: {result}")
                times.setdefault((kind, workers), []).append(time.perf_counter() - start)
    print(f"decode + sample + crop of {len(clips)} clips, median of {repeats} (interleaved); {_load()}")
    print("| workers | threads: videos/s | x one | processes: videos/s | x one |")
    print("|---|---|---|---|---|")
    rate = {key: len(clips) / statistics.median(values) for key, values in times.items()}
    for workers in counts:
        t, p = rate[("threads", workers)], rate[("processes", workers)]
        print(f"| {workers} | {t:.1f} | {t / rate[('threads', 1)]:.2f}x | {p:.1f} | {p / rate[('processes', 1)]:.2f}x |")


def classify(clips_dir: Path, before: str | None, repeats: int, size: str, tmp: Path) -> None:
    from actionclip._dev.weights import write_checkpoint

    ckpt = write_checkpoint(tmp / f"random-{size.replace('/', '')}.pt", size=size)
    labels = [a for name in ("running", "jumping", "swimming", "cooking", "playing guitar") for a in ("--text", name)]
    checkouts = [("this checkout", str(ROOT))] + ([("before", before)] if before else [])
    times: dict[str, list[float]] = {}
    for _ in range(repeats):
        for name, checkout in checkouts:
            env = {**os.environ, "PYTHONPATH": checkout}
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "actionclip", "classify", str(clips_dir), *labels,
                                   "--model", str(ckpt), "--json"], capture_output=True, text=True, env=env,
                                  cwd=checkout)
            seconds = time.perf_counter() - start
            count = sum(1 for line in done.stdout.splitlines() if line.startswith("{"))
            if count == 0:
                raise SystemExit(f"bench_pipeline: classify with {checkout} failed: {done.stderr[-2000:]}")
            times.setdefault(name, []).append(seconds)
    print(f"actionclip classify {clips_dir} ({count} videos), random {size}, wall time incl. start-up, "
          f"median of {repeats} (interleaved); {_load()}")
    print("| code | seconds | each run |")
    print("|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} |")


def main(argv: list[str] | None = None) -> int:
    from actionclip.workers import available_cores

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--overlap", action="store_true", help="the thread pool's bookkeeping (sleeping items)")
    p.add_argument("--decode", action="store_true", help="decode scaling: threads vs processes")
    p.add_argument("--classify", action="store_true", help="classify on the clip folder, this code vs --before")
    p.add_argument("--all", action="store_true", help="every table")
    p.add_argument("--clips", metavar="DIR", help="the clips (default: the shared clips)")
    p.add_argument("--workers", type=int, default=available_cores(), help="most workers (default: the cores)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--before", metavar="CHECKOUT", help="another checkout to compare classify with (e.g. main)")
    p.add_argument("--size", default="B/32", help="model size for --classify (default: B/32)")
    p.add_argument("--dry-run", action="store_true", help="tiny generated clips, tiny model, one repeat")
    args = p.parse_args(argv)
    if not (args.overlap or args.decode or args.classify or args.all):
        args.overlap = True
    if args.dry_run:
        args.repeats, args.size = 1, "tiny"
    with tempfile.TemporaryDirectory() as tmp:
        if args.overlap or args.all:
            overlap()
        clips = _clips(args.clips, Path(tmp), args.dry_run)
        if args.decode or args.all:
            decode(clips, max(1, args.workers), args.repeats, 32 if args.dry_run else 224)
        if args.classify or args.all:
            folder = clips[0].parent if args.dry_run else Path(args.clips) if args.clips else SHARED
            classify(folder, args.before, args.repeats, args.size, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
