"""``actionclip eval``: accuracy of a model on a labeled dataset, with a full report.

DATA is a folder per class, a CSV/TSV ``path,label`` list or the original ``path num_frames label``
list. Writes ``report.json`` (summary, per-class accuracy, confusion counts, every prediction, failed
videos) and ``confusion.png`` into ``--out``. Base-to-novel: ``--novel-fraction``/``--novel`` split the
classes the same way ``actionclip train`` does, and ``--subset novel`` evaluates only the classes a
fine-tuned model never saw, with only those as candidates.
"""

from __future__ import annotations

import argparse

from actionclip.commands._common import (
    add_device_args,
    add_model_arg,
    add_template_args,
    load_model,
    non_negative_int,
    positive_int,
    read_labels,
)

__all__ = ["register", "run", "add_dataset_arguments", "has_class_split", "load_data"]


def add_dataset_arguments(p: argparse.ArgumentParser) -> None:
    """Options that pick the dataset, its classes and a base/novel class split (shared with train)."""
    p.add_argument("data", metavar="DATA", help="folder per class, CSV/TSV 'path,label' list, or original "
                   "'path num_frames label_index' list")
    p.add_argument("--labels", "--classes", dest="classes", metavar="NAME|FILE",
                   help="class list: ucf101, hmdb51, k400, k600, or a file (one name per line, or 'id,name' CSV); "
                   "fixes the candidates and their order (required for numeric labels)")
    p.add_argument("--root", metavar="DIR", help="base folder of relative paths in a list (default: the list's folder)")
    p.add_argument("--group-pattern", metavar="REGEX",
                   help="regex whose first group names a clip's actor/scene group (default: UCF101 _gNN_)")
    p.add_argument("--novel-fraction", type=float, metavar="F",
                   help="base-to-novel: hold out this seeded fraction of the classes as novel")
    p.add_argument("--novel", metavar="FILE", help="base-to-novel: file naming the novel classes, one per line")
    p.add_argument("--split-seed", type=int, default=0, metavar="S", help="seed of the class and clip splits")


def has_class_split(args: argparse.Namespace) -> bool:
    """Whether the options ask for a base/novel class split (``--novel`` or ``--novel-fraction``)."""
    return args.novel is not None or args.novel_fraction is not None


def load_data(args: argparse.Namespace, subset: str | None):
    """The dataset, restricted to the ``base`` or ``novel`` classes when a base/novel split is given.

    ``subset`` None means: novel when a split is given, else everything.
    """
    from actionclip.datasets import load_dataset, split_classes
    from actionclip.errors import UsageError

    ds = load_dataset(args.data, classes=args.classes, root=args.root, group_pattern=args.group_pattern)
    if not has_class_split(args):
        if subset not in (None, "all"):
            raise UsageError(f"--subset {subset} needs a base/novel split (--novel-fraction or --novel)")
        return ds
    if subset == "all":
        return ds
    novel = read_labels(args.novel) if args.novel else None
    base_ds, novel_ds = split_classes(ds, novel=novel, novel_fraction=0.5 if args.novel_fraction is None else args.novel_fraction,
                                      seed=args.split_seed)
    return base_ds if subset == "base" else novel_ds


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval`` sub-command."""
    p = subparsers.add_parser(
        "eval",
        help="accuracy on a labeled dataset (top-1/5, per class, confusion, JSON report)",
        description="Evaluate a model on labeled videos: top-1, top-5, mean class accuracy, per-class "
        "accuracy, a confusion-matrix PNG and a JSON report with every prediction.",
        epilog="example: actionclip eval UCF-101/ --labels ucf101 --model vit-b-32-8f --out ucf-eval",
    )
    add_dataset_arguments(p)
    add_model_arg(p, help="registry name or checkpoint path; default: %(default)s")
    p.add_argument("--subset", choices=("all", "base", "novel"), default=None,
                   help="with a base/novel split: which classes to evaluate (default: novel)")
    p.add_argument("--val-list", metavar="FILE", help="evaluate only the clips this file names (e.g. testlist01.txt)")
    p.add_argument("-o", "--out", default="actionclip-eval", metavar="DIR",
                   help="folder for report.json and confusion.png (default: %(default)s)")
    p.add_argument("--frames", type=positive_int, metavar="T", help="frames per view (default: the model's)")
    p.add_argument("--clips", type=positive_int, default=1, metavar="C", help="temporal views per video (default 1)")
    p.add_argument("--crops", type=int, choices=(1, 3), default=1, help="spatial crops per view: 1 or 3")
    add_template_args(p)
    add_device_args(p)
    p.add_argument("--workers", type=non_negative_int, metavar="N", help="decoding workers (default: up to 4)")
    p.add_argument("--processes", action="store_true", help="decode in worker processes instead of threads")
    p.add_argument("--batch-size", type=positive_int, metavar="B", help="videos encoded together")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from actionclip.datasets import split_dataset
    from actionclip.errors import UsageError
    from actionclip.evaluate import evaluate
    from actionclip.templates import resolve_templates

    ds = load_data(args, args.subset)
    out = Path(args.out)
    try:  # before the long evaluation, not after it
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
    subset = args.subset or ("novel" if has_class_split(args) else "all")
    if args.val_list:
        ds = split_dataset(ds, val_list=args.val_list)[1]
    templates = resolve_templates(template=args.template, templates_file=args.templates)
    model = load_model(args, frames=args.frames)
    report = evaluate(model, ds, templates=templates, frames=args.frames, clips=args.clips, crops=args.crops,
                      batch_size=args.batch_size, workers=args.workers, processes=args.processes, progress=not args.quiet,
                      settings={"model": args.model, "subset": subset})
    json_path = report.save_json(out / "report.json")
    png_path = report.save_confusion(out / "confusion.png")
    print(f"{args.data}: {len(ds.classes)} classes" + (f" ({subset})" if subset != "all" else ""))
    print(report.summary())
    print(f"report: {json_path}\nconfusion matrix: {png_path}")
    return 1 if report.failures else 0
