"""``actionclip models``: the named models, their published accuracy, where they come from, their
licence and size, and which are cached."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register", "run", "model_rows"]


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


def _size(nbytes: int | None) -> str:
    if nbytes is None:
        return "?"
    return f"{nbytes / 1e6:.0f} MB"


ZERO_SHOT = (("ucf101", "UCF101"), ("hmdb51", "HMDB51"), ("k600", "K600"))


def source_kind(spec: Any) -> str:
    """How a model's file arrives: ``download`` (our downloader), ``hub`` (Hugging Face Hub) or
    ``manual`` (fetched by hand, then loaded by path or placed in the cache)."""
    return "hub" if spec.hub_id else "download" if spec.url else "manual"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _short_licence(text: str) -> str:
    return text.split(" (")[0] if text else "?"


def model_rows() -> list[dict[str, Any]]:
    """One dict per registered model, with its cache state (no network, no hashing)."""
    from actionclip.loading.download import cached_path, is_cached
    from actionclip.loading.registry import DEFAULT_MODEL, list_models

    rows = []
    for spec in list_models():
        cached = is_cached(spec)
        size = spec.size_bytes
        if size is None and cached:
            size = cached_path(spec).stat().st_size  # unpublished size: report the file we hold
        rows.append(
            {
                "name": spec.name,
                "default": spec.name == DEFAULT_MODEL,
                "family": spec.family,
                "arch": spec.arch,
                "frames": spec.frames,
                "fusion": spec.fusion,
                "zero_shot": {key: spec.zero_shot.get(key) for key, _ in ZERO_SHOT},
                "k400_top1": spec.k400_top1,
                "views": spec.views,
                "size_bytes": size,
                "cached": cached,
                "path": str(cached_path(spec)),
                "source": source_kind(spec),
                "url": spec.url,
                "hub_id": spec.hub_id,
                "manual": spec.manual,
                "licence": spec.licence,
                "homepage": spec.source,
                "description": spec.description,
            }
        )
    return rows


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
    from actionclip.loading.download import cache_dir

    print(f"\n* default model. Cache: {cache_dir()} (set ACTIONCLIP_CACHE to move it).\n"
          "UCF101 / HMDB51 / K600: zero-shot top-1 (%) as published, after training on Kinetics-400 "
          "(K600: its classes new to K400). K400: top-1 (%) as published, with the test views in --json.\n"
          "source: download = fetched on first use; hub = Hugging Face Hub; manual = no stable URL, "
          "`actionclip download NAME` says where to fetch it.")
    return 0
