"""Seconds per clip of each model family on this CPU, random full-size weights: the speed column of
docs/models.md.

Per model and precision: ``encode`` is one clip of the model's T (8) frames of normalised pixels
through ``model.encode_video``; ``classify`` is ``model.classify(video, 10 labels)`` on a real or
generated clip file with the label features computed beforehand: decode, preprocessing, encode and
scoring (for X-CLIP the prompt generator too). The models are timed in interleaved rounds, each
after a warm-up; the table gives median and best seconds and, per precision, the median per-round
ratio to the first model: on a shared machine (the load average is printed) the ratio and the best
are the figures to trust.

Adding a family is one entry in :data:`MODELS`: a name and a function that builds the model.

    python benchmarks/bench_families.py [--models vit-b-32-8f,xclip-b-32-8f,...] [--dtypes fp32,bf16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
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


class Subject:
    """One model in one precision, ready to time: ``encode()`` and ``classify()``."""

    def __init__(self, name: str, model: Any, dtype: str, video: Path):
        from actionclip import runtime
        from actionclip.bench.run import default_labels

        self.name, self.dtype = name, dtype
        self.model = model.to(dtype=runtime.resolve("cpu", dtype).torch_dtype).eval()
        self.pixels = clip_pixels(self.model)
        self.video = video
        self.labels = default_labels(10)
        with torch.inference_mode():
            self.label_features = self.model.encode_labels(self.labels)
        self.times: dict[str, list[float]] = {"encode": [], "classify": []}

    def encode(self) -> Any:
        return self.model.encode_video(self.pixels)

    def classify(self) -> Any:
        return self.model.classify(self.video, self.labels, label_embeddings=self.label_features)


def race(subjects: list[Subject], rounds: int) -> None:
    """Each round times every subject once, in turn (after one warm-up each), so that a load that
    comes and goes on a shared machine falls on all of them alike."""
    with torch.inference_mode():
        for subject in subjects:
            subject.encode(), subject.classify()
        for _ in range(rounds):
            for subject in subjects:
                for task in ("encode", "classify"):
                    started = time.perf_counter()
                    getattr(subject, task)()
                    subject.times[task].append(time.perf_counter() - started)


def _cell(subject: Subject, base: Subject | None, task: str) -> str:
    times = subject.times[task]
    text = f"{statistics.median(times):.3f} ({min(times):.3f})"
    if base is not None and base is not subject:
        # the median of per-round ratios: robust to load that changes between rounds
        ratio = statistics.median(t / b for t, b in zip(times, base.times[task]))
        text += f", {ratio:.2f}x"
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of: {', '.join(MODELS)}")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    import copy

    from actionclip import runtime
    from actionclip.bench.run import default_clip

    runtime.configure_threads(args.threads)
    names, dtypes = args.models.split(","), args.dtypes.split(",")
    print(f"CPU threads: {torch.get_num_threads()}; load average before: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        video = default_clip(Path(tmp))
        subjects, flops = [], {}
        for name in names:
            model = MODELS[name]()
            flops[name] = clip_gflop(model)
            subjects += [Subject(name, copy.deepcopy(model), dtype, video) for dtype in dtypes]
            del model
            gc.collect()
        race(subjects, args.rounds)
    print(f"\n| model | dtype | GFLOP / clip | encode, s / clip: median (best), vs {names[0]} "
          f"| classify incl. decode, s / clip: median (best), vs {names[0]} |")
    print("|---|---|---|---|---|")
    for subject in subjects:
        base = next(s for s in subjects if s.name == names[0] and s.dtype == subject.dtype)
        print(f"| {subject.name} | {subject.dtype} | {flops[subject.name]:.0f} | {_cell(subject, base, 'encode')} "
              f"| {_cell(subject, base, 'classify')} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}; {args.rounds} rounds; video: {video.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
