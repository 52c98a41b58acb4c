"""Training throughput (clips/s) of one optimizer step on CPU: fp32 vs bf16 autocast.

Measures the model side of :func:`actionclip.training.train.train` (encode 8 frames per clip, fusion, prompt
text, KL loss both ways, backward, fused AdamW) on random weights of full size (ViT-B/32, 8 frames by
default), with pre-made inputs so decoding is not part of the figure. bf16 autocast only pays off
on CPUs with native bf16 (AVX512-BF16 / AMX); elsewhere it is emulated and far slower than fp32.

    python benchmarks/bench_train.py [--size B/32] [--frames 8] [--batch 4] [--steps 3] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def bench(model, batch: int, frames: int, steps: int, precision: str) -> float:
    from actionclip.training.losses import actionclip_loss
    from actionclip.training.train import (
        TrainConfig,
        _autocast,
        _precision,
        _prompt_tokens,
        _TrainStep,
        build_optimizer,
    )

    model.train()
    optimizer = build_optimizer(model, TrainConfig(lr=1e-6))
    step = _TrainStep(model)
    device = torch.device("cpu")
    dtype = _precision(precision, device)
    r = model.input_resolution
    pixels = torch.randn(batch, frames, 3, r, r)
    labels = torch.arange(batch) % max(1, batch // 2)  # some repeated classes: multi-positive targets
    tokens = _prompt_tokens([f"action number {i}" for i in range(batch)], ["a video of {}"], 77)[0][labels]
    tokens = tokens[:, : int(tokens.argmax(-1).max()) + 1]
    times = []
    for i in range(steps + 1):  # the first step warms up allocators and kernels
        t0 = time.perf_counter()
        with _autocast(device, dtype):
            video, text, scale = step(pixels, tokens)
        loss = actionclip_loss(video.float(), text.float(), labels, scale.float())[0]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - t0)
    return batch / (sum(times) / len(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="B/32", choices=("tiny", "B/32", "B/16"))
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import actionclip
    from actionclip._dev.weights import write_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        path = write_checkpoint(Path(tmp) / "random.pt", size=args.size, frames=args.frames)
        model = actionclip.load(path, frames=args.frames)
    print(f"training step, {args.size} random weights, {args.frames} frames, batch {args.batch}, "
          f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}")
    for precision in args.precisions.split(","):
        rate = bench(model, args.batch, args.frames, args.steps, precision)
        print(f"  {precision}: {rate:6.2f} clips/s  ({args.batch / rate:.2f} s/step)", flush=True)


if __name__ == "__main__":
    main()
