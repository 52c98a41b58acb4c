"""``actionclip models``: the named models, their accuracy and size, and which are cached."""

from __future__ import annotations

import argparse
import json

from actionclip.loading.catalog import model_rows

__all__ = ["register", "run", "model_rows"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``models`` sub-command."""
    p = subparsers.add_parser(
        "models",
        help="list the named models (accuracy, size, cached or not)",
        description="List the models 'actionclip' can download by name. '*' marks the default; "
        "'cached' ones work offline.",
    )
    p.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    p.set_defaults(func=run)


def _size(nbytes: int | None) -> str:
    if nbytes is None:
        return "?"
    return f"{nbytes / 1e6:.0f} MB"


def run(args: argparse.Namespace) -> int:
    """Print the model table (or JSON)."""
    rows = model_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ["", "name", "arch", "frames", "fusion", "K400 top-1", "size", "cached"]
    table = [
        [
            "*" if r["default"] else "",
            r["name"],
            r["arch"],
            str(r["frames"]),
            r["fusion"],
            f"{r['k400_top1']:.1f}%" if r["k400_top1"] is not None else "zero-shot",
            _size(r["size_bytes"]),
            "yes" if r["cached"] else "no",
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    from actionclip.loading.cache import cache_dir

    print(f"\n* default model. Cache: {cache_dir()} (set ACTIONCLIP_CACHE to move it). "
          "K400 top-1: single view, as published.")
    return 0
