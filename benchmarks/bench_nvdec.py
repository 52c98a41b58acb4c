"""NVDEC vs CPU decoding on the shared clips: rates, session sweep, pixel difference, both together.

Issue 17 part 3, printed as one table (and ``--out`` Markdown):

* **cpu, P processes** - decode + sample + preprocess (the CPU path, ``VideoViews`` with torch's
  resize) of every clip in P spawned worker processes, one FFmpeg/torch thread each: videos/s.
* **nvdec, S sessions** - the same views through :class:`actionclip.video.nvdec.NvdecSource` (frames
  decoded and preprocessed on the GPU) over the clips NVDEC takes (H.264 here), repeated to
  ``--nvdec-videos``: videos/s for S = 1, 4, 7, 14 (Hopper has 7 engines), per backend installed.
* **pixels** - NVDEC's sampled frames after resize and crop (uint8, before normalising) against the
  CPU path's, per clip: max and mean absolute difference in grey levels.
* **together** - every clip once, NVDEC taking what it decodes and CPU processes the rest, both at
  once: videos/s, against the two alone.

Without a GPU or the library it prints the one line saying so and measures the CPU rows only.
``--dry-run`` uses two generated clips and 1-2 processes (the tests run it on CPU).

    python benchmarks/bench_nvdec.py [--clips DIR] [--processes 1,2,4,8,16] [--sessions 1,4,7,14]
                                     [--backends pynvvideocodec,torchcodec] [--out FILE]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from actionclip.video import nvdec
from actionclip.video.preprocess import Preprocessing
from actionclip.video.views import VideoViews

FRAMES = 8
VIEWS = VideoViews(Preprocessing(224), frames=FRAMES, torch=True)


def _clips(root: Path | None, tmp: Path, dry_run: bool) -> list[Path]:
    if not dry_run:
        shared = root or Path(os.environ.get("ACTIONCLIP_SHARED_DATA", Path(__file__).resolve().parents[2]
                                             / "shared" / "data")) / "clips"
        found = sorted(p for p in Path(shared).rglob("*") if p.is_file() and p.suffix.lower() != ".csv") \
            if Path(shared).is_dir() else []
        if found:
            return found
    from actionclip._dev.videos import make_test_video

    return [make_test_video(tmp / "a.mp4", seconds=2, size=(320, 240)),
            make_test_video(tmp / "b.avi", seconds=2, size=(320, 240), codec="mpeg4")]


def _one_thread() -> None:
    torch.set_num_threads(1)


def _warm(path: str) -> None:
    """Busy long enough that every worker of the pool is started (and has imported torch and PyAV)
    before the timing: a pool starts workers only while none is idle."""
    _cpu_views(path)
    time.sleep(1.0)


def _cpu_views(path: str) -> tuple[int, ...]:
    return tuple(VIEWS(path).shape)  # the work, not the transfer of the result back


def cpu_rate(paths: list[Path], processes: int) -> tuple[float, int]:
    """Videos/s of the CPU path in ``processes`` spawned workers; and how many failed."""
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(processes, mp_context=ctx, initializer=_one_thread) as pool:
        list(pool.map(_warm, [str(paths[0])] * processes))  # start-up out of the timing
        start = time.perf_counter()
        failed = 0
        for f in [pool.submit(_cpu_views, str(p)) for p in paths]:
            failed += f.exception() is not None
        return len(paths) / (time.perf_counter() - start), failed


def nvdec_rate(source: nvdec.NvdecSource, paths: list[Path]) -> float:
    for f in [source.submit(p) for p in paths[: source.sessions]]:  # sessions made out of the timing
        f.result()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for f in [source.submit(p) for p in paths]:
        f.result()
    torch.cuda.synchronize()
    return len(paths) / (time.perf_counter() - start)


def pixel_difference(source: nvdec.NvdecSource, paths: list[Path]) -> list[tuple[str, float, float]]:
    out = []
    for path in paths:
        p = nvdec.plan(path)
        if p.reason is not None:
            continue
        got = nvdec.views_on_device(source.clips_of(str(path)), VIEWS.preprocessing, normalize=False).cpu()
        cpu = torch.from_numpy(VIEWS.sample(path))
        want = nvdec.views_on_device(cpu, VIEWS.preprocessing, normalize=False)
        diff = (got.int() - want.int()).abs().float()
        out.append((path.name, float(diff.max()), float(diff.mean())))
    return out


def together(paths: list[Path], source: nvdec.NvdecSource, processes: int) -> float:
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(processes, mp_context=ctx, initializer=_one_thread) as pool:
        list(pool.map(_warm, [str(paths[0])] * processes))
        start = time.perf_counter()
        futures = [source.submit(p) if source.accepts(p) else pool.submit(_cpu_views, str(p)) for p in paths]
        for f in futures:
            f.exception()
        torch.cuda.synchronize()
        return len(paths) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=Path, help="folder of clips (default: the shared clips)")
    p.add_argument("--processes", default="1,2,4,8,16")
    p.add_argument("--sessions", default="1,4,7,14")
    p.add_argument("--backends", default="pynvvideocodec,torchcodec")
    p.add_argument("--nvdec-videos", type=int, default=480, help="NVDEC-decodable clips repeated to this many")
    p.add_argument("--out", type=Path)
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    lines: list[str] = []

    def row(*cells: object) -> None:
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        print(lines[-1], flush=True)
        if args.out:  # after every row: a run stopped by its time limit keeps what it measured
            args.out.write_text("\n".join(["| what | setting | rate (videos/s) | note |", "|---|---|---|---|",
                                           *lines]) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        paths = _clips(args.clips, Path(tmp), args.dry_run)
        processes = [1, 2] if args.dry_run else [int(x) for x in args.processes.split(",")]
        print(f"# {len(paths)} clips; load average {os.getloadavg()}", flush=True)
        print("| what | setting | rate (videos/s) | note |\n|---|---|---|---|", flush=True)
        cpu: dict[int, float] = {}
        for n in processes:
            cpu[n], failed = cpu_rate(paths, n)
            row("cpu", f"{n} processes", f"{cpu[n]:.1f}", f"{cpu[n] / cpu[processes[0]]:.2f}x one; {failed} failed")
        accepted = [q for q in paths if nvdec.accepts(q)]
        row("routing", f"{len(accepted)} of {len(paths)} clips to NVDEC", "", "the rest: CPU (codec, container...)")
        for backend in args.backends.split(","):
            source = nvdec.nvdec_source(VIEWS, backend=backend, say=lambda line, b=backend: row("nvdec", b, "-", line))
            if source is None or not accepted:
                continue
            source.close()
            work = [accepted[i % len(accepted)] for i in range(max(len(accepted), args.nvdec_videos))]
            cpu_same = cpu_rate(work[: len(accepted) * 4], processes[-1])[0]
            row("cpu", f"{processes[-1]} processes, NVDEC's clips only", f"{cpu_same:.1f}", "the comparison for the rows below")
            for sessions in [int(x) for x in args.sessions.split(",")]:
                src = nvdec.NvdecSource(VIEWS, sessions=sessions, backend=backend)
                try:
                    rate = nvdec_rate(src, work)
                    row("nvdec", f"{backend}, {sessions} sessions", f"{rate:.1f}",
                        f"{rate / cpu_same:.2f}x CPU ({processes[-1]} processes); {src.sessions_open} decoders, "
                        f"{src.stats}")
                except Exception as exc:  # noqa: BLE001 - report and go on to the next setting
                    row("nvdec", f"{backend}, {sessions} sessions", "failed", " ".join(str(exc).split())[:200])
                finally:
                    src.close()
            src = nvdec.NvdecSource(VIEWS, sessions=1, backend=backend)
            try:
                diffs = pixel_difference(src, accepted)
                for name, mx, mean in diffs:
                    row("pixels", f"{backend} {name}", "", f"max {mx:.0f}, mean {mean:.2f} grey levels (uint8 after resize)")
                if diffs:
                    row("pixels", f"{backend} all {len(diffs)} clips", "",
                        f"max {max(d[1] for d in diffs):.0f}, mean of means {statistics.mean(d[2] for d in diffs):.2f}")
            except Exception as exc:  # noqa: BLE001
                row("pixels", backend, "failed", " ".join(str(exc).split())[:200])
            finally:
                src.close()
            both = nvdec.NvdecSource(VIEWS, sessions=8, backend=backend)
            try:
                rate = together(paths * (1 if args.dry_run else 4), both, max(1, processes[-1] - 2))
                row("together", f"{backend} 8 sessions + {max(1, processes[-1] - 2)} CPU processes", f"{rate:.1f}",
                    f"every clip; CPU alone {cpu[processes[-1]]:.1f}")
            except Exception as exc:  # noqa: BLE001
                row("together", backend, "failed", " ".join(str(exc).split())[:200])
            finally:
                both.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
