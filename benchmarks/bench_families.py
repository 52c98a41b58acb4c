"""Seconds per clip of every model family on this machine, beside its published accuracy: the
table of docs/models.md ("which model to pick").

Random full-size weights (no pretrained weights can be downloaded here; FLOPs and timings do not
depend on the values), built in memory with each family's own config. Per family and dtype:

* **encode**: one clip ``[1, T, 3, 224, 224]`` of normalised pixels -> video embedding, the part
  that depends on the model;
* **classify**: ``model.classify`` on a generated 10-second 320x240 video with the label
  embeddings computed beforehand: decode + sample + preprocess + encode + score, what
  ``actionclip classify`` costs per file once the model is loaded;
* **GFLOP**: counted by ``torch.utils.flop_counter`` on one clip (2 FLOPs per multiply-add).

Each figure is the median of ``--repeats`` rounds after a warm-up round; a round times every model
in turn, so that a shared machine's load swings hit all rows alike (the ratios between rows are
the steadier figures).

The published figures come from the registry (:mod:`actionclip.loading.registry`), so the table
cannot drift from ``actionclip models``. One entry per model in :data:`MODELS`.

    python benchmarks/bench_families.py [--repeats 3] [--dtypes fp32,bf16] [--only NAME,...] [--large]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from actionclip.bench.run import build_models, count_flops, time_call


def _actionclip(size: str, frames: int, fusion: str) -> Callable[[], Any]:
    return lambda: build_models(size, frames=frames, fusion=fusion)


def _vclip(family: str, clip_size: str) -> Callable[[], Any]:
    """A family of actionclip.families.vclip (its own config) on a random CLIP of ``clip_size``."""

    def build() -> Any:
        from actionclip.families import FAMILIES
        from actionclip.families.vclip.model import FROSTER, OpenVCLIP
        from actionclip.model.actionclip import ActionCLIP
        from actionclip.model.fusion import MeanPooling

        config = FAMILIES[family].default_config()
        cls = {"vificlip": ActionCLIP, "openvclip": OpenVCLIP, "froster": FROSTER}[family]
        return cls(_random_clip(clip_size), MeanPooling(), config).eval()

    return build


def _xclip(size: str, frames: int = 8) -> Callable[[], Any]:
    def build() -> Any:
        from actionclip._dev.xclip_weights import random_xclip
        from actionclip.families.xclip import default_config
        from actionclip.families.xclip.model import XCLIP

        return XCLIP(random_xclip(size, frames), default_config().replace(frames=frames),
                     name=f"random X-CLIP {size}-{frames}f").eval()

    return build


def _random_clip(size: str) -> Any:
    from actionclip._dev.weights import SIZES, random_clip
    from actionclip.model.clip import CLIP, CLIPConfig

    if size in SIZES:
        return random_clip(size)
    assert size == "L/14"
    clip = CLIP(CLIPConfig(embed_dim=768, image_resolution=224, vision_width=1024, vision_layers=24, vision_heads=16,
                           vision_patch_size=14, context_length=77, vocab_size=49408, text_width=768, text_layers=12,
                           text_heads=12))
    clip.initialize_parameters(torch.Generator().manual_seed(0))
    return clip


# registry name (whose published figures the row shows) -> builder of a random model of that
# architecture and config; one entry per model
MODELS: dict[str, Callable[[], Any]] = {
    "vit-b-32-8f": _actionclip("B/32", 8, "Transf"),
    "vit-b-16-32f": _actionclip("B/16", 32, "Transf"),
    "clip-vit-b-16": _actionclip("B/16", 8, "meanP"),
    "xclip-b-32-8f": _xclip("B/32"),
    "xclip-b-16-8f": _xclip("B/16"),
    "xclip-b-16-zero-shot": _xclip("B/16", 32),
    "vificlip-b16-k400": _vclip("vificlip", "B/16"),
    "openvclip-b16": _vclip("openvclip", "B/16"),
    "froster-b16": _vclip("froster", "B/16"),
    "openvclip-l14": _vclip("openvclip", "L/14"),
}
LARGE = {"openvclip-l14"}  # only with --large (minutes per run on a small CPU)

_FAMILY_NAMES = {"actionclip": "ActionCLIP / CLIP", "xclip": "X-CLIP", "vificlip": "ViFi-CLIP",
                 "openvclip": "Open-VCLIP", "froster": "FROSTER"}
LABELS = ["riding a bike", "playing the violin", "juggling balls", "swimming", "cooking", "dancing",
          "reading a book", "running", "abseiling", "surfing"]


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def measure(names: list[str], dtypes: list[str], repeats: int, video: Path,
            log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Every entry's figures. The machine may be shared: each round times every model once, in
    turn (interleaved), so that a load swing hits all rows alike; each figure is a median of rounds."""
    from actionclip.loading.registry import get_spec

    models, rows = [], []
    for name in names:
        spec = get_spec(name)
        model = MODELS[name]()
        pixels = torch.randn(1, model.num_frames, 3, 224, 224)
        rows.append({"family": _FAMILY_NAMES.get(spec.family, spec.family), "name": spec.name, "arch": spec.arch,
                     "frames": model.num_frames, "zero_shot": dict(spec.zero_shot), "k400_top1": spec.k400_top1,
                     "gflop": count_flops(functools.partial(model.encode_video, pixels)) / 1e9})
        models.append((model, pixels))
        log(f"built {spec.name}: {rows[-1]['gflop']:.0f} GFLOP per clip")
    for dtype in dtypes:
        runs = []
        for model, pixels in models:
            model.to(torch.bfloat16 if dtype == "bf16" else torch.float32)
            with torch.inference_mode():
                labels = model.encode_labels(LABELS)
            runs.append((lambda m=model, x=pixels: m.encode_video(x),
                         lambda m=model, e=labels: m.classify(str(video), LABELS, label_embeddings=e)))
        times: list[dict[str, list[float]]] = [{"encode": [], "classify": []} for _ in runs]
        for round_ in range(repeats + 1):  # round 0 warms up
            for (encode, classify), t in zip(runs, times):
                with torch.inference_mode():
                    for kind, fn in (("encode", encode), ("classify", classify)):
                        took = time_call(fn, "cpu", repeats=1, budget_s=1e9, warmup=0)[0]
                        if round_:
                            t[kind].append(took)
            log(f"{dtype} round {round_}/{repeats} done")
        for row, t in zip(rows, times):
            row[f"encode_{dtype}"] = statistics.median(t["encode"])
            row[f"classify_{dtype}"] = statistics.median(t["classify"])
            log(f"{row['name']} {dtype}: encode {row[f'encode_{dtype}']:.2f} s, "
                f"classify {row[f'classify_{dtype}']:.2f} s")
    return rows


def format_rows(rows: list[dict[str, Any]], dtypes: list[str]) -> str:
    head = ["family", "model", "arch", "frames", "UCF101", "HMDB51", "K600", "K400", "GFLOP/clip",
            *(f"encode {d} (s)" for d in dtypes), *(f"classify {d} (s)" for d in dtypes)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["family"], f"`{r['name']}`", r["arch"], str(r["frames"]),
                 *(_figure(r["zero_shot"].get(k)) for k in ("ucf101", "hmdb51", "k600")), _figure(r["k400_top1"]),
                 f"{r['gflop']:.0f}", *(f"{r[f'encode_{d}']:.2f}" for d in dtypes),
                 *(f"{r[f'classify_{d}']:.2f}" for d in dtypes)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from actionclip import runtime
    from actionclip._dev.videos import make_test_video

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--only", help="comma-separated registry names")
    p.add_argument("--large", action="store_true", help="include the L/14 rows")
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtypes = args.dtypes.split(",")
    chosen = args.only.split(",") if args.only else [n for n in MODELS if args.large or n not in LARGE]
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(make_test_video(Path(tmp) / "clip.mp4", seconds=10.0, size=(320, 240), fps=25))
        rows = measure(chosen, dtypes, args.repeats, video, log)
    print(f"{runtime.describe_machine()}; {started}; "
          f"load average at the end {' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}\n")
    print(format_rows(rows, dtypes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
