"""``actionclip eval-open-vocab``: the open-vocabulary protocol on a labeled dataset.

Seen/unseen class splits (75/25 and 50/50), 10 seeded random splits each, zero-shot accuracy on the
unseen classes with only those as candidates, mean ± std over the splits; the split files are written
beside the report. A thin layer over :func:`actionclip.evaluation.splits.evaluate_open_vocabulary`.
"""

from __future__ import annotations

import argparse

from actionclip.cli import options

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval-open-vocab`` sub-command."""
    p = subparsers.add_parser(
        "eval-open-vocab",
        help="open-vocabulary protocol: unseen-class accuracy over 10 seeded 75/25 and 50/50 splits",
        description="Split the dataset's classes into seen and unseen ones (75/25 and 50/50 by default), "
        "10 seeded random splits each, score every clip of the unseen classes against the unseen classes "
        "only, and report top-1, top-5 and mean class accuracy as mean ± std over the splits. Writes "
        "OUT/report.json and OUT/splits/<protocol>/splitNN.{seen,unseen}.txt.",
        epilog="example: actionclip eval-open-vocab UCF-101/ --labels ucf101 -o ucf-open-vocab",
    )
    options.add_dataset_source(p)
    p.add_argument("--protocol", action="append", choices=("75/25", "50/50"),
                   help="seen/unseen proportion (repeat; default both)")
    p.add_argument("--splits", type=options.positive_int, default=10, metavar="N", help="random splits per protocol (default 10)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="first split's seed (then S+1, ...; default 0)")
    p.add_argument("-o", "--out", default="actionclip-open-vocab", metavar="DIR",
                   help="folder for report.json and the split files (default: %(default)s)")
    options.add_model(p)
    options.add_frames(p)
    options.add_views(p)
    options.add_templates(p)
    options.add_runtime(p)
    options.add_decoding(p)
    options.add_batch_size(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from actionclip.evaluation.splits import evaluate_open_vocabulary
    from actionclip.files import check_writable
    from actionclip.training.datasets import load_dataset

    out = Path(args.out)
    check_writable(out / "report.json")
    ds = load_dataset(args.data, classes=args.classes, root=args.root)
    model = options.load_model(args, frames=args.frames)
    report = evaluate_open_vocabulary(model, ds, protocols=args.protocol or ("75/25", "50/50"), splits=args.splits,
                                      seed=args.seed, templates=options.templates_from(args), frames=args.frames,
                                      clips=args.clips, crops=args.crops, batch_size=args.batch_size,
                                      workers=args.workers, settings={"model": args.model})
    paths = report.save(out)
    print(f"{args.data}: {len(ds.classes)} classes, {len(ds)} clips; unseen-class accuracy over splits")
    print(report.table())
    print(f"report: {paths['report']} (split files in {out / 'splits'})")
    return 1 if report.failures else 0
