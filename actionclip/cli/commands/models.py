"""``actionclip models``: the named models, their published accuracy, where they come from, their
licence and size, and which are cached."""

from __future__ import annotations

import argparse
import json

from actionclip.loading.catalog import ZERO_SHOT, model_rows

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``models`` sub-command."""
    p = subparsers.add_parser(
        "models",
        help="list the named models (published accuracy, source, licence, cached or not)",
        description="List the models 'actionclip' knows by name, with their published zero-shot and "
        "Kinetics-400 accuracy. '*' marks the default; 'cached' ones work offline; 'manual' ones are "
        "fetched by hand (see docs/models.md).",
    )
    p.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    p.set_defaults(func=run)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _short_licence(text: str) -> str:
    return text.split(" (")[0] if text else "?"


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
    header = ["", "name", "family", "arch", "frames", *(title for _, title in ZERO_SHOT), "K400", "size", "source",
              "licence", "cached"]
    table = [
        [
            "*" if r["default"] else "",
            r["name"],
            r["family"],
            r["arch"],
            str(r["frames"]),
            *(_percent(r["zero_shot"][key]) for key, _ in ZERO_SHOT),
            _percent(r["k400_top1"]),
            _size(r["size_bytes"]),
            r["source"],
            _short_licence(r["licence"]),
            "yes" if r["cached"] else "no",
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    from actionclip.loading.cache import cache_dir

    print(f"\n* default model. Cache: {cache_dir()} (set ACTIONCLIP_CACHE to move it).\n"
          "UCF101 / HMDB51 / K600: zero-shot top-1 (%) as published, after training on Kinetics-400 "
          "(K600: its classes new to K400). K400: top-1 (%) as published, with the test views in --json.\n"
          "source: download = fetched on first use; hub = Hugging Face Hub; manual = no stable URL, "
          "`actionclip download NAME` says where to fetch it.")
    return 0
