"""``actionclip search``: the videos and moments of an index that best match a free-text query.

A thin layer over :meth:`actionclip.collection.Index.search`. The index records its model, so no
``--model`` is needed. Prints the best videos, then the best moments (with start and end) when the
index has them; ``--json`` prints one object per hit, highest score first.
"""

from __future__ import annotations

import argparse
import json

from actionclip.cli import options
from actionclip.cli.options import positive_int

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``search`` sub-command."""
    p = subparsers.add_parser(
        "search",
        help="find the videos and moments of an index that match a text",
        description="Rank the videos (and moments, if indexed with --window) of an index by how well "
        "they match a free-text query. Needs an index built by 'actionclip index'.",
        epilog="example: actionclip search videos.index 'someone slipping on stairs' --top-k 5",
    )
    p.add_argument("index", metavar="INDEX", help="an index folder written by 'actionclip index'")
    p.add_argument("text", metavar="TEXT", help="what to look for, in words")
    p.add_argument("-k", "--top-k", type=positive_int, default=10, metavar="N",
                   help="best N videos, and best N moments (default 10)")
    p.add_argument("--only", choices=("videos", "moments"), help="show only whole videos or only moments")
    p.add_argument("--json", action="store_true", help="print one JSON object per hit")
    options.add_runtime(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from actionclip.collection import open_index

    idx = open_index(args.index, device=args.device, dtype=None if args.dtype == "auto" else args.dtype)
    kind = {"videos": "video", "moments": "window", None: None}[args.only]
    hits = idx.search(args.text, top_k=args.top_k, kind=kind)
    if args.json:
        for hit in hits:
            print(json.dumps(hit.to_dict(), ensure_ascii=False))
        return 0
    for title, group in (("videos", [h for h in hits if h.kind == "video"]),
                         ("moments", [h for h in hits if h.kind == "window"])):
        if group:
            print(f"{title}:")
            for hit in group:
                span = f"  {hit.start:8.2f}-{hit.end:.2f} s" if hit.kind == "window" else ""
                print(f"  {hit.score:7.4f}  {hit.video}{span}")
    if not hits:
        print(f"{args.index}: the index holds no videos yet")
    return 0
