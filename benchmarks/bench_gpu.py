"""GPU path: videos/s model-only and end-to-end, fp16/bf16, eager vs torch.compile vs CUDA graphs, and
the decoding that feeds it (issue 17).

Goal (issue 17, on an H200 with 16 cores): 16 decode workers >= 12x one, end to end >= 150 videos/s on
the shared clips and >= 80 % of the decode rate. The FLOP bound is measured by a matmul in the same run.

Model-only: random full-size weights (``--model B/32``), a batch sweep, each variant the median of
``--repeats`` runs after warm-up: ``eager`` (one batched ``encode_video``: all B*T frames in one call,
SDPA attention), ``compile`` (``torch.compile``, max-autotune without CUDA graphs), ``graphs``
(``gpu.CudaGraphEncoder``: the eager model captured once per shape and replayed).

Decode scaling: ``--videos`` files (``--clips DIR``; default the shared clips, else generated ones)
decoded, sampled and cropped to uint8 by 1, 2, 4, 8, 16 ... up to ``--workers`` decode worker
processes (:mod:`actionclip.workers`), one row each with its speed-up over one worker.

End to end: the same files through :func:`actionclip.pipeline.encode_videos` (what ``classify`` and
``index`` run: ``--workers`` processes, uint8 crops normalised on the device, batches of
``--e2e-batch``) and scored against 100 labels; printed beside the encoder-only rate and as a
percentage of the decode-only rate. NVDEC (issue 17 part 3) is added by :func:`decode_sources` where
the library's rule gives it (a CUDA device and PyNvVideoCodec; ``ACTIONCLIP_NVDEC=0`` leaves it out): its
rate alone and together with the workers is printed beside theirs, and the end-to-end run uses both.

Without CUDA the script says so and measures nothing (the CPU figures come from ``actionclip
bench``); ``--device cpu --model tiny`` exercises its logic anywhere (tests/test_bench_gpu.py).

    python benchmarks/bench_gpu.py [--model B/32] [--batches 64,256,1024] [--dtypes fp16,bf16]
                                   [--compile] [--graphs] [--videos 256] [--workers 16] [--clips DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from actionclip import runtime
from actionclip.bench import gpu
from actionclip.bench.run import build_models, count_flops, default_labels, matmul_gflops


def _median_time(fn, device: str, repeats: int) -> float:
    fn()
    gpu.synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        gpu.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def model_only(model, device: str, dtype: torch.dtype, batches: list[int], variants: list[str], repeats: int,
               flops_clip: float, bound: float) -> float:
    """Prints a row per batch and variant; returns the best encoder-only rate."""
    r, t = model.input_resolution, model.num_frames
    best = 0.0
    for batch in batches:
        pixels = gpu.to_device(torch.randn(batch, t, 3, r, r), device, dtype)
        for variant in variants:
            if variant == "eager":
                fn = model.encode_video
            elif variant == "compile":
                fn = gpu.maybe_compile(model.encode_video, True)
            else:
                fn = gpu.CudaGraphEncoder(model.encode_video)
            out_of_memory = torch.cuda.OutOfMemoryError if device.startswith("cuda") else MemoryError
            try:
                with torch.inference_mode():
                    seconds = _median_time(functools.partial(fn, pixels), device, repeats)
            except out_of_memory:
                print(f"  batch {batch:5d} {variant:8s}: out of memory")
                torch.cuda.empty_cache()
                continue
            rate = batch / seconds
            best = max(best, rate)
            pct = 100 * flops_clip * rate / (bound * 1e9)
            print(f"  batch {batch:5d} {variant:8s}: {rate:10.1f} videos/s  ({seconds * 1e3:8.2f} ms/batch, "
                  f"{pct:4.0f}% of the {bound:.0f} GFLOP/s matmul bound)", flush=True)
        del pixels
    return best


def _videos(count: int, tmp: Path, clips: str | None) -> list[Path]:
    root = Path(clips) if clips else Path(__file__).resolve().parents[2] / "shared" / "data" / "clips"
    found = sorted(p for p in root.rglob("*") if p.suffix in (".mp4", ".avi", ".mkv")) if root.is_dir() else []
    if not found:
        from actionclip._dev.videos import make_test_video

        found = [make_test_video(tmp / f"v{i}.mp4", seconds=4, size=(320, 240)) for i in range(8)]
    return [found[i % len(found)] for i in range(count)]


def worker_counts(most: int) -> list[int]:
    """1, 2, 4, 8, 16 ... below ``most``, then ``most`` itself."""
    counts = [n for n in (2 ** k for k in range(8)) if n < most]
    return counts + [most]


def decode_sources(model) -> list[tuple[str, list]]:
    """Decode sources besides the CPU worker processes, as ``(name, [DecodeSource])``: NVDEC when the
    library's one rule (:func:`actionclip.pipeline.sources_for`: the model on CUDA, the library and a
    GPU present, ``ACTIONCLIP_NVDEC`` not ``0``) gives it, else nothing (after its one line). Its rows
    are printed beside the CPU ones, alone and together with the workers; the caller closes it."""
    from actionclip.pipeline import PrepareViews, sources_for

    found = sources_for(model, PrepareViews(model.views, model.num_frames))
    return [("nvdec", found)] if found else []


def _source_rate(videos: list[Path], sources: list) -> tuple[float, int]:
    """Videos/s of the sources alone on the videos they accept (each submitted once the source has
    room, results taken in order), and how many they accepted."""
    import collections

    taken = [v for v in videos if any(s.accepts(v) for s in sources)]
    start = time.perf_counter()
    pending: collections.deque = collections.deque()
    for video in taken:
        while True:
            source = next((s for s in sources if s.accepts(video)), None)
            if source is not None:
                break
            if not pending:
                raise SystemExit(f"bench_gpu: {video}: accepted once, then refused by an idle source")
            pending.popleft().result()  # full: wait for the oldest
        pending.append(source.submit(video))
    for future in pending:
        future.result()
    _synchronize()
    seconds = time.perf_counter() - start
    return (len(taken) / seconds if taken else 0.0), len(taken)


def _decode_rate(prepare, videos: list[Path], workers: int, sources: list) -> float:
    from actionclip.pipeline import prefetch

    start = time.perf_counter()
    for video, result in prefetch(prepare, videos, workers=workers, processes=True, sources=sources,
                                  ahead=max(2, 2 * workers)):
        if isinstance(result, BaseException):
            raise SystemExit(f"bench_gpu: {video}: {result}")
    _synchronize()
    return len(videos) / (time.perf_counter() - start)


def _synchronize() -> None:
    """Wait for the GPU work a decode source queued (its crops are made by asynchronous kernels)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def decode_scaling(model, videos: list[Path], most: int, sources: list[tuple[str, list]]) -> float:
    """Rows of decode + sample + crop rates by worker count; returns the rate with ``most`` workers."""
    from actionclip.pipeline import PrepareViews

    prepare = PrepareViews(model.views, model.num_frames)
    _decode_rate(prepare, videos[: max(2, most)], most, [])  # start the fork server, warm the file cache
    one = rate = 0.0
    for workers in worker_counts(most):
        rate = _decode_rate(prepare, videos, workers, [])
        one = one or rate
        print(f"  decode + sample + crop, {workers:3d} worker processes: {rate:8.1f} videos/s "
              f"({rate / one:4.1f}x one worker)", flush=True)
    for name, extra in sources:
        alone, taken = _source_rate(videos, extra)
        both = _decode_rate(prepare, videos, most, extra)
        print(f"  decode + sample + crop, {name}: {alone:8.1f} videos/s alone (the {taken} of {len(videos)} "
              f"videos it takes), {both:8.1f} videos/s with {most} worker processes (all {len(videos)})",
              flush=True)
        rate = max(rate, both)
    return rate


def end_to_end(model, device: str, dtype: torch.dtype, videos: list[Path], workers: int, batch: int,
               decode_rate: float, encoder_rate: float, sources: list) -> None:
    from actionclip.pipeline import PrepareViews, encode_videos

    prepare = PrepareViews(model.views, model.num_frames)
    with torch.inference_mode():
        label_emb = model.encode_labels(default_labels(100))
        done = 0
        start = time.perf_counter()
        for batch_videos, features in encode_videos(model, videos, prepare, batch_size=batch, workers=workers,
                                                    sources=sources):
            if isinstance(features, BaseException):
                raise SystemExit(f"bench_gpu: {batch_videos[0]}: {features}")
            model.probabilities(features, label_emb).argmax(-1).cpu()
            done += len(batch_videos)
        gpu.synchronize(device)
    rate = done / (time.perf_counter() - start)
    beside = "".join(f" + {type(s).__name__}" for s in sources)
    print(f"  end to end ({workers} worker processes{beside} -> uint8 -> {device} {runtime.dtype_name(dtype)} -> scores, "
          f"batch {batch}): {rate:8.1f} videos/s = {100 * rate / decode_rate:.0f}% of the decode-only rate "
          f"({decode_rate:.1f}); encoder alone {encoder_rate:.1f} videos/s", flush=True)


def main(argv: list[str] | None = None) -> int:
    from actionclip.workers import resolve_workers, warm_up

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="B/32")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtypes", default="fp16,bf16")
    p.add_argument("--batches", default="64,256,1024")
    p.add_argument("--compile", action="store_true", help="add the torch.compile variant (slow to compile)")
    p.add_argument("--graphs", action="store_true", help="add the CUDA-graph variant")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--videos", type=int, default=256, help="videos for the decode and end-to-end runs (0: skip)")
    p.add_argument("--clips", metavar="DIR", help="where the videos come from (default: the shared clips)")
    p.add_argument("--workers", type=int, default=None,
                   help="most decode worker processes (default: one per core, the library's rule)")
    p.add_argument("--e2e-batch", type=int, default=128)
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here: nothing measured (CPU figures: actionclip bench)")
        return 0
    device = args.device
    workers = max(1, resolve_workers(args.workers))
    if args.videos:
        warm_up(workers)  # the decode workers' imports overlap building the model
    model = build_models(args.model)
    r, t = model.input_resolution, model.num_frames
    flops_clip = count_flops(lambda: model.encode_video(torch.zeros(1, t, 3, r, r)))
    print(f"# {runtime.describe_machine()}; {args.model}-{t}f: {flops_clip / 1e9:.1f} GFLOP per clip")
    graphs = args.graphs and device.startswith("cuda")
    variants = ["eager"] + (["compile"] if args.compile else []) + (["graphs"] if graphs else [])
    model.to(device=device)  # where it runs decides the decode sources (NVDEC for a CUDA model)
    sources = decode_sources(model) if args.videos else []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as closing:
        for _, extra in sources:
            for source in extra:
                closing.callback(source.close)
        videos = _videos(args.videos, Path(tmp), args.clips) if args.videos else []
        decode_rate = 0.0
        if videos:
            print(f"## decoding: {len(videos)} videos, {t} frames each, {model.input_resolution} px crops")
            decode_rate = decode_scaling(model, videos, workers, sources)
        for name in args.dtypes.split(","):
            dtype = runtime.torch_dtype(name)
            bound = matmul_gflops(device, dtype)
            print(f"## {device} {name}: matmul bound {bound / 1e3:.1f} TFLOP/s -> "
                  f"{bound * 1e9 / flops_clip:.0f} videos/s at best")
            model.to(device=device, dtype=dtype)
            encoder_rate = model_only(model, device, dtype, [int(b) for b in args.batches.split(",")], variants,
                                      args.repeats, flops_clip, bound)
            if videos:
                end_to_end(model, device, dtype, videos, workers, args.e2e_batch, decode_rate, encoder_rate,
                           [s for _, extra in sources for s in extra])
    return 0


if __name__ == "__main__":
    sys.exit(main())
