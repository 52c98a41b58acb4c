"""``actionclip download``: fetch named models into the cache ahead of time (e.g. before going offline)."""

from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``download`` sub-command."""
    p = subparsers.add_parser(
        "download",
        help="download named models into the cache",
        description="Download models by name (see 'actionclip models') or URL into the cache, verifying "
        "size and checksum. Interrupted downloads resume.",
    )
    p.add_argument("names", nargs="+", metavar="NAME", help="model name or http(s) URL")
    p.add_argument("--force", action="store_true", help="download again even if a good copy is cached")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Download each model; print the cached path of each."""
    from actionclip.loading.download import download

    for name in args.names:
        path = download(name, progress=False if args.quiet else None, force=args.force)
        print(f"{name}: {path}")
    return 0
