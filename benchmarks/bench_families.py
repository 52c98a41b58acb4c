"""Seconds per clip of each model family on this CPU, random full-size weights: the speed column of
docs/models.md.

Per model and precision: ``encode`` is one 8-frame (the model's T) clip of normalised pixels through
``model.encode_video``; ``classify`` is ``model.classify(video, 10 labels)`` on a real or generated
clip file with the label features computed beforehand: decode, preprocessing, encode and scoring
(for X-CLIP the prompt generator too). Median and best of ``--repeats`` runs after a warm-up; the
load average is printed, because the machine may be shared (then the best is the better estimate).

Adding a family is one entry in :data:`MODELS`: a name and a function that builds the model.

    python benchmarks/bench_families.py [--models xclip-b-32-8f,...] [--dtypes fp32,bf16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch


def _actionclip(size: str) -> Callable[[], Any]:
    def build() -> Any:
        from actionclip.bench.run import build_models

        return build_models(size, frames=8, fusion="Transf")

    return build


def _xclip(size: str, frames: int = 8) -> Callable[[], Any]:
    def build() -> Any:
        from actionclip._dev.xclip_weights import random_xclip
        from actionclip.model.xclip import XCLIP

        return XCLIP(random_xclip(size, frames), name=f"random X-CLIP {size}-{frames}f")

    return build


# name (as in the registry) -> builder of a model with random weights of that size
MODELS: dict[str, Callable[[], Any]] = {
    "vit-b-32-8f": _actionclip("B/32"),
    "xclip-b-32-8f": _xclip("B/32"),
    "xclip-b-16-8f": _xclip("B/16"),
}


def clip_pixels(model: Any) -> torch.Tensor:
    r = model.input_resolution
    return torch.randn(1, model.num_frames, 3, r, r, generator=torch.Generator().manual_seed(0))


def clip_gflop(model: Any) -> float:
    """FLOPs of one clip encode, counted in fp32 (the bf16 fast path's packed kernels are not counted)."""
    from actionclip.bench.run import count_flops

    model = model.float()
    pixels = clip_pixels(model)
    return count_flops(lambda: model.encode_video(pixels)) / 1e9


def measure(model: Any, video: Path, dtype: str, repeats: int, budget_s: float) -> dict[str, float]:
    from actionclip import runtime
    from actionclip.bench.run import default_labels, time_call

    choice = runtime.resolve("cpu", dtype)
    model = model.to(dtype=choice.torch_dtype).eval()
    pixels = clip_pixels(model)
    labels = default_labels(10)
    with torch.inference_mode():
        label_features = model.encode_labels(labels)

        def encode() -> Any:
            return model.encode_video(pixels)

        def classify() -> Any:
            return model.classify(video, labels, label_embeddings=label_features)

        encode_s = time_call(encode, "cpu", repeats, budget_s)
        classify_s = time_call(classify, "cpu", repeats, budget_s)
    return {"encode": encode_s, "classify": classify_s}


def _fmt(times: list[float]) -> str:
    return f"{statistics.median(times):.3f} ({min(times):.3f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of: {', '.join(MODELS)}")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget", type=float, default=30.0, help="seconds per measurement at most")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    from actionclip import runtime
    from actionclip.bench.run import default_clip

    runtime.configure_threads(args.threads)
    print(f"CPU threads: {torch.get_num_threads()}; load average before: {os.getloadavg()[0]:.2f}", flush=True)
    print("\n| model | dtype | GFLOP / clip | encode, s / clip: median (best) | classify incl. decode, s / clip: "
          "median (best) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        video = default_clip(Path(tmp))
        for name in args.models.split(","):
            model = MODELS[name]()
            gflop = clip_gflop(model)
            for dtype in args.dtypes.split(","):
                f = measure(model, video, dtype, args.repeats, args.budget)
                print(f"| {name} | {dtype} | {gflop:.0f} | {_fmt(f['encode'])} | {_fmt(f['classify'])} |", flush=True)
            del model
            gc.collect()
    print(f"\nload average after: {os.getloadavg()[0]:.2f}; video: {video.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
