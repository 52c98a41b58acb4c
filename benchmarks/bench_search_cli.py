"""Benchmark: one ``actionclip search`` in a fresh process, whole model vs. the text side alone.

What a user waits for when typing ``actionclip search INDEX TEXT`` in a terminal: a new Python
process, the index opened, the query embedded, the table searched, for a query never asked before
(a new text each run, so no cache helps) and for a repeated one. Two ways to embed the query:

* **whole model** (what ``search`` did before): ``actionclip.load`` of the index's checkpoint (torch
  imported, both towers built), then its text encoder; measured by a child that touches
  ``Index.model`` before searching;
* **text side** (``search`` now): :mod:`actionclip.collection.text_side`: no torch, the
  checkpoint's text weights memory-mapped, the text transformer in numpy, LanceDB imported meanwhile;
  a repeated query is read from the disk label cache.

Each figure is the median wall time of ``--runs`` child processes. Random checkpoints (tiny and
full-size ViT-B/32, ``actionclip._dev.weights``) and a two-video index built once in ``--workdir``.

Usage::

    python benchmarks/bench_search_cli.py --runs 5
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHILD = """
import sys
from actionclip.collection import open_index
idx = open_index(sys.argv[1], dtype="fp32")
if sys.argv[3] == "whole":
    idx.model
hits = idx.search(sys.argv[2], top_k=5)
assert hits
"""


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one child process. CPU time is the steadier figure on a busy
    machine: other processes stretch the wall time, not the work done."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", CHILD, *args], check=True, env=env, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="processes per figure (default 5)")
    p.add_argument("--sizes", nargs="+", default=["tiny", "B/32"], help="checkpoint sizes (default tiny B/32)")
    p.add_argument("--workdir", type=Path, help="keep checkpoints and indexes here (default: a temporary folder)")
    args = p.parse_args(argv)

    from actionclip._dev.videos import make_test_video
    from actionclip._dev.weights import write_checkpoint
    from actionclip.cli import main as cli

    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        clips = [make_test_video(work / f"clip{i}.mp4", seconds=2, size=(96, 64), fps=10) for i in range(2)]
        env = {**os.environ, "ACTIONCLIP_CACHE": str(work / "cache"), "PYTHONPATH": str(REPO)}
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; median of {args.runs} processes")
        for size in args.sizes:
            checkpoint = work / f"random-{size.replace('/', '')}.pt"
            if not checkpoint.exists():
                write_checkpoint(checkpoint, size=size)
            index = work / f"{size.replace('/', '')}.index"
            if not (index / "index.json").exists():
                assert cli(["index", *map(str, clips), "--out", str(index), "--model", str(checkpoint),
                            "--dtype", "fp32", "--device", "cpu"]) == 0
            row = {}
            for mode in ("whole", "side"):  # interleaved runs would be fairer; the load is reported instead
                new = [timed([str(index), f"query {mode} {i} {time.time_ns()}", mode], env) for i in range(args.runs)]
                timed([str(index), "a repeated query", mode], env)  # into the cache (the text side's)
                again = [timed([str(index), "a repeated query", mode], env) for _ in range(args.runs)]
                row[mode] = (median(new), median(again))
            for what, i in (("new query", 0), ("repeated query", 1)):
                (ww, wc), (sw, sc) = row["whole"][i], row["side"][i]
                print(f"  {size:<5} {what:<15} wall: whole model {ww:6.2f} s, text side {sw:6.2f} s ({ww / sw:.1f}x)   "
                      f"CPU: whole model {wc:6.2f} s, text side {sc:6.2f} s ({wc / sc:.1f}x)")
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
