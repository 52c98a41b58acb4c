"""The speed table of docs/speed.md: ``actionclip bench`` for B/32 (and B/16) with int8 ONNX rows.

Goals (issue 5) on the reference CPU: B/32-8f clip encode <= 0.20 s fp32 and <= 0.040 s bf16, i.e.
>= 1.5x and >= 2x faster than Hugging Face ``transformers`` on the same run; text encoding of
16 templates x 100 labels and the ONNX Runtime path measured. The script prints each table and, per
goal, whether this run met it. The machine may be shared: every row is a median of interleaved runs
(see :mod:`actionclip.bench.run`) and the load average is printed with the table.

    python benchmarks/bench_speed.py [--models B/32,B/16] [--repeats 5] [--out table.md] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from actionclip.bench.run import BenchConfig, Row, format_table, run_bench


def goals(rows: list[Row]) -> list[str]:
    """One line per issue-5 goal: measured figure, target, met or not."""
    def find(impl: str, dtype: str) -> Row | None:
        return next((r for r in rows if r.task == "clip latency" and r.impl == impl and r.dtype == dtype
                     and r.device == "cpu" and r.seconds), None)

    out = []
    for dtype, limit, speedup in (("fp32", 0.20, 1.5), ("bf16", 0.040, 2.0)):
        ours, hf = find("actionclip", dtype), find("hf-transformers", dtype)
        if ours is None:
            out.append(f"clip encode {dtype}: not measured on this CPU (see the table's note)")
            continue
        ratio = hf.seconds / ours.seconds if hf else float("nan")
        met = ours.seconds <= limit and (hf is None or ratio >= speedup)
        out.append(f"clip encode {dtype}: {ours.seconds:.3f} s (goal <= {limit} s), {ratio:.2f}x HF "
                   f"(goal >= {speedup}x): {'MET' if met else 'NOT met'}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="B/32")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget", type=float, default=20.0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--no-int8", action="store_true")
    p.add_argument("--out", type=Path, help="append the Markdown tables to this file")
    args = p.parse_args(argv)
    chunks = []
    for size in args.models.split(","):
        cfg = BenchConfig(model=size, repeats=args.repeats, budget_s=args.budget, threads=args.threads,
                          dtypes=tuple(args.dtypes.split(",")), int8=not args.no_int8)
        rows, header = run_bench(cfg, log=lambda line: print(line, file=sys.stderr, flush=True))
        text = f"### {size}\n\n{format_table(rows, header)}\n"
        if size == "B/32":  # the goals are stated for B/32-8f only
            text += "\n" + "\n".join(f"- {g}" for g in goals(rows)) + "\n"
        print(text, flush=True)
        chunks.append(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write("\n".join(chunks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
