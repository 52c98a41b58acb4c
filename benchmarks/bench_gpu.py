"""GPU path: videos/s model-only and end-to-end, fp16/bf16, eager vs torch.compile vs CUDA graphs.

Goal (issue 5, on an H200): >= 10,000 videos/s model-only for B/32-8f, and end-to-end >= 80 % of the
decode-bound rate with 16 CPU cores. The FLOP bound is measured by a matmul in the same run.

Model-only: random full-size weights (``--model B/32``), a batch sweep, each variant the median of
``--repeats`` runs after warm-up: ``eager`` (one batched ``encode_video``: all B*T frames in one call,
SDPA attention), ``compile`` (``torch.compile``, max-autotune without CUDA graphs), ``graphs``
(``gpu.CudaGraphEncoder``: the eager model captured once per shape and replayed).

End-to-end: ``--videos`` files (the shared clips, else generated ones) decoded + preprocessed by
``--workers`` threads (:func:`actionclip.pipeline.prefetch`; PyAV and torch release the GIL; a
forked process pool would deadlock on torch's OpenMP state) into pinned host batches, copied
asynchronously, encoded and scored; compared with the decode-only rate of the same workers.

Without CUDA the script says so and measures nothing (the CPU figures come from ``actionclip
bench``); ``--device cpu --model tiny`` exercises its logic anywhere.

    python benchmarks/bench_gpu.py [--model B/32] [--batches 64,256,1024] [--dtypes fp16,bf16]
                                   [--compile] [--graphs] [--videos 256] [--workers 14]
"""

from __future__ import annotations

import argparse
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
               flops_clip: float, bound: float) -> None:
    r, t = model.input_resolution, model.num_frames
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
            pct = 100 * flops_clip * rate / (bound * 1e9)
            print(f"  batch {batch:5d} {variant:8s}: {rate:10.1f} videos/s  ({seconds * 1e3:8.2f} ms/batch, "
                  f"{pct:4.0f}% of the {bound:.0f} GFLOP/s matmul bound)", flush=True)
        del pixels


def _videos(count: int, tmp: Path) -> list[Path]:
    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips"
    found = sorted(p for p in root.rglob("*") if p.suffix in (".mp4", ".avi", ".mkv")) if root.is_dir() else []
    if not found:
        from actionclip._dev.videos import make_test_video

        found = [make_test_video(tmp / f"v{i}.mp4", seconds=4, size=(320, 240)) for i in range(8)]
    return [found[i % len(found)] for i in range(count)]


def _prepare(args: tuple[str, int, int]) -> torch.Tensor:
    from actionclip.video import read_video
    from actionclip.video.preprocess import preprocess_frames

    path, frames, resolution = args
    return preprocess_frames(read_video(path, frames=frames)[0], resolution=resolution)  # [T, 3, R, R]


def end_to_end(model, device: str, dtype: torch.dtype, videos: list[Path], workers: int, batch: int,
               graphs: bool) -> None:
    from actionclip.pipeline import prefetch

    items = [(str(p), model.num_frames, model.input_resolution) for p in videos]
    start = time.perf_counter()
    for _ in prefetch(_prepare, items, workers=workers, ahead=4 * workers):
        pass
    decode_rate = len(items) / (time.perf_counter() - start)
    print(f"  decode + preprocess only, {workers} worker threads: {decode_rate:8.1f} videos/s")

    labels = default_labels(100)
    encode = gpu.CudaGraphEncoder(model.encode_video) if graphs else model.encode_video
    with torch.inference_mode():
        label_emb = model.encode_labels(labels)
        pending: list[torch.Tensor] = []
        done = 0
        start = time.perf_counter()

        def flush() -> None:
            nonlocal done
            host = torch.stack(pending)
            if graphs and len(pending) < batch:  # pad the tail to the captured shape
                host = torch.cat([host, host[-1:].expand(batch - len(pending), *host.shape[1:])])
            emb = encode(gpu.to_device(host, device, dtype))[: len(pending)]
            model.probabilities(emb, label_emb).argmax(-1).cpu()
            done += len(pending)
            pending.clear()

        for _, pixels in prefetch(_prepare, items, workers=workers, ahead=4 * workers):
            if isinstance(pixels, BaseException):
                raise pixels
            pending.append(pixels)
            if len(pending) == batch:
                flush()
        if pending:
            flush()
        gpu.synchronize(device)
    rate = done / (time.perf_counter() - start)
    print(f"  end to end (decode -> pinned -> {device} {runtime.dtype_name(dtype)} -> scores): {rate:8.1f} videos/s "
          f"= {100 * rate / decode_rate:.0f}% of the decode-bound rate")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="B/32")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtypes", default="fp16,bf16")
    p.add_argument("--batches", default="64,256,1024")
    p.add_argument("--compile", action="store_true", help="add the torch.compile variant (slow to compile)")
    p.add_argument("--graphs", action="store_true", help="add the CUDA-graph variant")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--videos", type=int, default=256, help="videos for the end-to-end run (0: skip)")
    p.add_argument("--workers", type=int, default=None, help="decode threads (default: cores - 2)")
    p.add_argument("--e2e-batch", type=int, default=128)
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here: nothing measured (CPU figures: actionclip bench)")
        return 0
    device = args.device
    model = build_models(args.model)
    r, t = model.input_resolution, model.num_frames
    flops_clip = count_flops(lambda: model.encode_video(torch.zeros(1, t, 3, r, r)))
    print(f"# {runtime.describe_machine()}; {args.model}-{t}f: {flops_clip / 1e9:.1f} GFLOP per clip")
    graphs = args.graphs and device.startswith("cuda")
    variants = ["eager"] + (["compile"] if args.compile else []) + (["graphs"] if graphs else [])
    workers = args.workers or max(1, (len(__import__("os").sched_getaffinity(0)) - 2))
    for name in args.dtypes.split(","):
        dtype = runtime.torch_dtype(name)
        bound = matmul_gflops(device, dtype)
        print(f"## {device} {name}: matmul bound {bound / 1e3:.1f} TFLOP/s -> "
              f"{bound * 1e9 / flops_clip:.0f} videos/s at best")
        model.to(device=device, dtype=dtype)
        model_only(model, device, dtype, [int(b) for b in args.batches.split(",")], variants, args.repeats,
                   flops_clip, bound)
        if args.videos:
            with tempfile.TemporaryDirectory() as tmp:
                end_to_end(model, device, dtype, _videos(args.videos, Path(tmp)), workers, args.e2e_batch,
                           graphs="graphs" in variants)
    return 0


if __name__ == "__main__":
    sys.exit(main())
