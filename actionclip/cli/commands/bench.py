"""``actionclip bench``: our model vs Hugging Face CLIP vs the FLOP bound, side by side, one run.

Prints a Markdown table (paste-able into docs) with median times, rates, the speed-up over HF on the
same task/device/dtype and the fraction of the matmul-measured FLOP bound. See
:mod:`actionclip.bench.run` for what each row measures.
"""

from __future__ import annotations

import argparse
import sys

from actionclip.cli.options import positive_float, positive_int

__all__ = ["register", "run"]


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` sub-command."""
    p = subparsers.add_parser(
        "bench",
        help="benchmark speed vs Hugging Face transformers CLIP and the machine's FLOP bound",
        description="Measure encode-one-clip latency, batch throughput, text-encoding throughput, "
        "end-to-end classify of a real clip and peak memory, for actionclip, HF transformers CLIP "
        "(same weights) and ONNX Runtime, in fp32 and bf16, on CPU and CUDA when present, next to "
        "the FLOP bound measured by a matmul in the same run.",
    )
    p.add_argument("--model", default="B/32", metavar="SIZE|PATH",
                   help="tiny, B/32 or B/16 (random weights, real sizes) or a checkpoint (default: B/32)")
    p.add_argument("--frames", type=positive_int, default=8, metavar="T", help="frames per clip (default 8)")
    p.add_argument("--device", default="auto", type=_csv, metavar="LIST",
                   help="comma list of cpu, cuda; auto = cpu plus cuda when present (default)")
    p.add_argument("--dtypes", default="fp32,bf16", type=_csv, metavar="LIST",
                   help="comma list of fp32, bf16, fp16 (CUDA adds fp16) (default fp32,bf16)")
    p.add_argument("--batch", type=positive_int, metavar="B", help="videos per batch (default 4 on CPU, 64 on CUDA)")
    p.add_argument("--labels", type=positive_int, default=100, metavar="L", help="labels for the text row (default 100)")
    p.add_argument("--text-labels", type=positive_int, metavar="N",
                   help="labels actually timed (x16 templates); the full-set time is projected "
                        "(default: all on CUDA, 8 on CPU)")
    p.add_argument("--repeats", type=positive_int, default=5, metavar="N", help="timed runs per row; the median is shown")
    p.add_argument("--budget", type=positive_float, default=20.0, metavar="S", help="seconds per row before stopping repeats")
    p.add_argument("--clip", metavar="VIDEO", help="video for the end-to-end row (default: a shared or generated clip)")
    p.add_argument("--no-hf", action="store_true", help="skip the Hugging Face reference")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime rows")
    p.add_argument("--int8", action="store_true", help="add int8 ONNX Runtime rows (and their accuracy drift)")
    p.add_argument("--compile", action="store_true", help="torch.compile the video encoders (CUDA rows)")
    p.add_argument("--cuda-graphs", action="store_true", help="replay our video encoder as a CUDA graph")
    p.add_argument("--threads", type=positive_int, metavar="N", help="CPU threads (default: one per core)")
    p.add_argument("--json", metavar="FILE", help="also write every sample as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from actionclip.errors import UsageError
    from actionclip.extras import require

    # Before the torch import and the minutes of timing: the reference rows need the bench extra.
    needed = (["transformers"] if not args.no_hf else []) + (["onnx", "onnxruntime"] if not args.no_onnx else [])
    require("bench", "actionclip bench", modules=needed, alternative="or leave those rows out: --no-hf, --no-onnx")
    from actionclip.bench.run import BenchConfig, format_table, rows_to_json, run_bench

    for name in args.dtypes:
        if name not in ("fp32", "bf16", "fp16"):
            raise UsageError(f"--dtypes {name}: expected fp32, bf16 or fp16")
    cfg = BenchConfig(
        model=args.model, frames=args.frames, devices=args.device, dtypes=args.dtypes, batch=args.batch,
        labels=args.labels, text_labels=args.text_labels, repeats=args.repeats, budget_s=args.budget,
        hf=not args.no_hf, onnx=not args.no_onnx, int8=args.int8, compile=args.compile,
        cuda_graphs=args.cuda_graphs, clip=args.clip, threads=args.threads,
    )
    if args.clip:  # the end-to-end row comes last: a bad clip must fail before the minutes of timing
        from actionclip.video import probe

        probe(args.clip)
    from actionclip.files import check_writable, write_text

    out = Path(args.json) if args.json else None
    if out is not None:
        if not out.parent.is_dir():  # before the minutes of timing, not after
            raise UsageError(f"--json {out}: no such folder {out.parent}")
        check_writable(out)
    log = (lambda _: None) if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    rows, header = run_bench(cfg, log=log)
    print(format_table(rows, header))
    if out is not None:
        write_text(out, rows_to_json(rows, header))
    return 0
