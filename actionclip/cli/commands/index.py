"""``actionclip index``: embed a video collection once, so later label sets and searches need no decoding.

A thin layer over :func:`actionclip.collection.index`: inputs as ``classify`` takes them, a progress
bar, one line per video that fails (the run goes on), a summary line at the end. Running it again
encodes only new or changed files; a run that was killed resumes where it stopped.
"""

from __future__ import annotations

import argparse
import sys

from actionclip.cli import options
from actionclip.cli.options import positive_float

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``index`` sub-command."""
    p = subparsers.add_parser(
        "index",
        help="embed videos once into an index for instant search and classify --index",
        description="Embed every video (files, folders, globs) once into an index folder (LanceDB). "
        "Rerunning adds new files and re-encodes changed ones; a killed run resumes. Then: "
        "'actionclip search INDEX TEXT' and 'actionclip classify --index INDEX --text ...'.",
        epilog="example: actionclip index videos/ --out videos.index --window 4 --stride 2",
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files, directories (recursive) or glob patterns")
    p.add_argument("-o", "--out", required=True, metavar="INDEX", help="the index folder (created or updated)")
    options.add_model(p, what="the model (default: the index's own; for a new index the default model)")
    p.set_defaults(model=None)  # an existing index keeps its model
    options.add_frames(p)
    options.add_views(p)
    p.set_defaults(clips=None, crops=None)  # an existing index keeps its views
    p.add_argument("--window", type=positive_float, metavar="SECONDS",
                   help="also embed moments: windows of this many seconds (searchable with start/end)")
    p.add_argument("--stride", type=positive_float, metavar="SECONDS",
                   help="seconds between moment windows (default: half the window)")
    options.add_runtime(p)
    options.add_decoding(p)
    options.add_batch_size(p)
    options.add_ray(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from actionclip.collection import index
    from actionclip.collection.build import NothingIndexed
    from actionclip.results import error_line

    bar = tqdm(total=0, unit="video", file=sys.stderr, disable=not sys.stderr.isatty(), leave=False)

    def start(total: int) -> None:
        bar.total = total
        bar.refresh()

    with bar:
        try:
            idx = index(args.videos, args.out, model=args.model, frames=args.frames, clips=args.clips,
                        crops=args.crops, window=args.window, stride=args.stride, device=args.device,
                        dtype=None if args.dtype == "auto" else args.dtype, batch_size=args.batch_size,
                        workers=args.workers, ray=args.ray, on_start=start,
                        on_error=lambda name, exc: bar.write(error_line(name, exc), file=sys.stderr),
                        on_video=lambda name: bar.update(1))
        except NothingIndexed:
            return 1  # each video's cause has had its line; no index was left behind
    return _summary(args, idx)


def _summary(args: argparse.Namespace, idx) -> int:
    report = idx.report
    parts = [f"{report.encoded} encoded" + (f" ({report.replaced} changed)" if report.replaced else ""),
             f"{report.unchanged} unchanged"]
    if report.failed:
        parts.append(f"{len(report.failed)} failed")
    if report.windows:
        parts.append(f"{report.windows} moments")
    print(f"{args.out}: {', '.join(parts)}; {len(idx)} videos in the index ({report.seconds:.1f} s)", file=sys.stderr)
    return 1 if report.failed else 0
