"""``actionclip eval``: accuracy of a model on a labeled dataset, with a full report.

DATA is a folder per class, a CSV/TSV ``path,label`` list or the original ``path num_frames label``
list. Writes ``report.json`` (summary, per-class accuracy, confusion counts, every prediction, failed
videos) and ``confusion.png`` into ``--out``. Base-to-novel: ``--novel-fraction``/``--novel`` split the
classes the same way ``actionclip train`` does, and ``--subset novel`` evaluates only the classes a
fine-tuned model never saw, with only those as candidates.
"""

from __future__ import annotations

import argparse

from actionclip.cli import options

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval`` sub-command."""
    p = subparsers.add_parser(
        "eval",
        help="accuracy on a labeled dataset (top-1/5, per class, confusion, JSON report)",
        description="Evaluate a model on labeled videos: top-1, top-5, mean class accuracy, per-class "
        "accuracy, a confusion-matrix PNG and a JSON report with every prediction.",
        epilog="example: actionclip eval UCF-101/ --labels ucf101 --model vit-b-32-8f --out ucf-eval",
    )
    options.add_dataset(p)
    options.add_model(p)
    p.add_argument("--subset", choices=("all", "base", "novel"), default=None,
                   help="with a base/novel split: which classes to evaluate (default: novel)")
    p.add_argument("--val-list", metavar="FILE", help="evaluate only the clips this file names (e.g. testlist01.txt)")
    p.add_argument("-o", "--out", default="actionclip-eval", metavar="DIR",
                   help="folder for report.json and confusion.png (default: %(default)s)")
    options.add_frames(p)
    options.add_views(p)
    options.add_templates(p)
    options.add_runtime(p)
    options.add_decoding(p, processes=True)
    options.add_batch_size(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from actionclip.files import check_writable
    from actionclip.training.datasets import split_dataset
    from actionclip.training.evaluate import evaluate

    ds = options.dataset_from(args, args.subset)
    out = Path(args.out)
    for name in ("report.json", "confusion.png"):
        check_writable(out / name)  # before the long evaluation, not after it
    subset = args.subset or ("novel" if options.has_class_split(args) else "all")
    if args.val_list:
        ds = split_dataset(ds, val_list=args.val_list)[1]
    templates = options.templates_from(args)
    model = options.load_model(args, frames=args.frames)
    report = evaluate(model, ds, templates=templates, frames=args.frames, clips=args.clips, crops=args.crops,
                      batch_size=args.batch_size, workers=args.workers, progress=not args.quiet,
                      settings={"model": args.model, "subset": subset})
    if report.evaluated == 0:
        return 1  # every clip failed, each with its line: no report of nothing is written
    json_path = report.save_json(out / "report.json")
    png_path = report.save_confusion(out / "confusion.png")
    print(f"{args.data}: {len(ds.classes)} classes" + (f" ({subset})" if subset != "all" else ""))
    print(report.summary())
    print(f"report: {json_path}\nconfusion matrix: {png_path}")
    return 1 if report.failures else 0
