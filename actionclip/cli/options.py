"""Every command-line option, defined once, and what turns parsed options into library objects.

Commands compose their parsers from the ``add_*`` groups below and never import each other. Choices
come from :mod:`actionclip.choices` (the sets the library validates against), defaults from the
library (the registry's default model, the model's own frames and templates). Light at import time
(argparse only): ``actionclip --help`` must not pay for torch, numpy or PyAV.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from actionclip.choices import BACKENDS, CROPS, DEVICES, DTYPES, ONNX_PRECISIONS, PRECISIONS, SCORE_KINDS

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel

__all__ = [
    "positive_int", "non_negative_int", "positive_float", "non_negative_float", "probability",
    "add_labels", "add_model", "add_frames", "add_views", "add_templates", "add_runtime", "add_decoding",
    "add_detection", "add_dataset", "add_backend", "add_ray", "add_verbose",
    "labels_from", "templates_from", "load_model", "has_class_split", "dataset_from", "read_labels",
]

# ----------------------------------------------------------------------------------------------
# argparse types


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0 (NaN refused)."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0 (NaN refused)."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def probability(text: str) -> float:
    """argparse type: a number in [0, 1] (NaN refused)."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


# ----------------------------------------------------------------------------------------------
# Option groups


def add_labels(p: argparse.ArgumentParser) -> None:
    """``-t/--text LABEL`` (repeatable) or ``--labels FILE``: exactly one is required."""
    labels = p.add_mutually_exclusive_group(required=True)
    labels.add_argument("-t", "--text", action="append", metavar="LABEL", help="an action label (repeat for each)")
    labels.add_argument("--labels", metavar="FILE|NAME",
                        help="text file with one label per line ('#' starts a comment line), or a built-in "
                             "class list: k400, k600, ucf101, hmdb51 (its class names as words, as eval "
                             "gives them: ApplyEyeMakeup -> 'apply eye makeup')")


def add_model(p: argparse.ArgumentParser, what: str = "the model") -> None:
    """``-m/--model NAME|PATH``, defaulting to the registry's default model."""
    from actionclip.loading.registry import DEFAULT_MODEL  # light: no torch

    p.add_argument("-m", "--model", default=DEFAULT_MODEL, metavar="NAME|PATH",
                   help=f"{what}: a registry name (see 'actionclip models') or a checkpoint path; "
                        "default: %(default)s")


def add_frames(p: argparse.ArgumentParser) -> None:
    """``--frames T``: frames per clip or window."""
    p.add_argument("--frames", type=positive_int, metavar="T",
                   help="frames sampled per clip or window (default: the model's)")


def add_views(p: argparse.ArgumentParser) -> None:
    """``--clips C`` and ``--crops K``: multi-view testing, averaged."""
    p.add_argument("--clips", type=positive_int, default=1, metavar="C",
                   help="temporal clips per video, averaged (default 1)")
    p.add_argument("--crops", type=int, choices=CROPS, default=1,
                   help="spatial crops per clip: 1 (centre) or 3 (along the long side), averaged (default 1)")


def add_templates(p: argparse.ArgumentParser) -> None:
    """``--template S`` or ``--templates FILE`` (at most one); neither means the model's own."""
    tmpl = p.add_mutually_exclusive_group()
    tmpl.add_argument("--template", metavar="S",
                      help="a single prompt template containing '{}' instead of the model's own templates")
    tmpl.add_argument("--templates", metavar="FILE", help="file of prompt templates, one per line")


def add_runtime(p: argparse.ArgumentParser, *, dtype: bool = True) -> None:
    """``--device`` and (unless ``dtype`` is False) ``--dtype``, resolved by :mod:`actionclip.runtime`."""
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="where to run: auto picks cuda when available (default: auto)")
    if dtype:
        p.add_argument("--dtype", choices=DTYPES, default="auto",
                       help="precision: auto picks bf16 on CUDA and on CPUs with AMX/AVX512-BF16, else "
                            "fp16 on older cards and fp32 on other CPUs (default: auto)")


def add_decoding(p: Any, *, processes: bool = False, default_workers: int | None = None,
                 help_text: str | None = None) -> None:
    """``--workers N``: the one decoding rule of every many-video command (:mod:`actionclip.workers`:
    N decode processes, 0 in this process, default one per core). ``processes=True`` also accepts the
    old ``--processes`` flag, hidden and without effect (decoding always uses processes now). ``p`` is
    a parser or one of its argument groups."""
    p.add_argument("--workers", type=non_negative_int, default=default_workers, metavar="N",
                   help=help_text or "decode worker processes (0: decode in this process; default: one per CPU "
                                     "core available; docs/video.md)")
    if processes:
        p.add_argument("--processes", action="store_true", help=argparse.SUPPRESS)


def add_batch_size(p: argparse.ArgumentParser, default: int | None = None, what: str = "videos encoded together") -> None:
    """``--batch-size B``."""
    help_text = f"{what} (default: {default})" if default else f"{what} (default: 1 on cpu, 8 on cuda)"
    p.add_argument("--batch-size", type=positive_int, default=default, metavar="B", help=help_text)


def add_backend(p: argparse.ArgumentParser) -> None:
    """``--backend torch|onnx`` and ``--onnx-precision auto|fp32|int8``."""
    p.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="onnx: --model is an exported ONNX model (see 'actionclip export')")
    p.add_argument("--onnx-precision", choices=ONNX_PRECISIONS, default="auto",
                   help="with --backend onnx: run the export's fp32 graphs, or its int8 ones (written by "
                        "'actionclip export --int8'); auto: fp32 when the export holds them, else int8")


def add_ray(p: argparse.ArgumentParser) -> None:
    """``--ray [ADDRESS]``: decode and encode on a Ray cluster (a local one without an address)."""
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="decode and encode on Ray: a cluster address (auto, ray://HOST:10001), or none "
                        "to start a local Ray runtime (needs: pip install \"actionclip[ray]\")")


def add_verbose(p: argparse.ArgumentParser, also: str = "", short: bool = False) -> None:
    """``--verbose``: every command takes it (see :mod:`actionclip.chatter`); ``also`` says what more it
    shows in this command."""
    flags = ("-v", "--verbose") if short else ("--verbose",)
    p.add_argument(*flags, action="store_true",
                   help=f"also show {also + ', and ' if also else ''}what the libraries underneath print "
                        "(warnings, log lines, progress bars)")


def add_precision(p: argparse.ArgumentParser) -> None:
    """``--precision`` of training (autocast)."""
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="autocast dtype (auto: bf16/fp16 on cuda, fp32 on cpu; bf16 works on cpu)")


def add_detection(p: argparse.ArgumentParser) -> None:
    """Labels, model and scoring options of detection over time (``timeline``, ``watch``)."""
    add_labels(p)
    add_model(p)
    p.add_argument("--window", type=positive_float, default=4.0, metavar="SECONDS",
                   help="seconds covered by one window's T frames (default 4)")
    add_frames(p)
    p.add_argument("--score", choices=SCORE_KINDS, default=SCORE_KINDS[0],
                   help="decision score: 'independent' (per label, vs background prompts; default) or "
                        "'softmax' (over the labels given, always picks one)")
    p.add_argument("--threshold", type=probability, default=0.5, metavar="P",
                   help="a label is detected when its decision score reaches P (default 0.5)")
    p.add_argument("--background", action="append", metavar="TEXT",
                   help="a background prompt for the independent score (repeat; default: a generic set)")
    add_templates(p)
    add_runtime(p)


def add_dataset(p: argparse.ArgumentParser) -> None:
    """The dataset, its classes and a base/novel class split (``eval``, ``train``)."""
    add_dataset_source(p)
    p.add_argument("--group-pattern", metavar="REGEX",
                   help="regex whose first group names a clip's actor/scene group (default: UCF101 _gNN_)")
    p.add_argument("--novel-fraction", type=fraction, metavar="F",
                   help="base-to-novel: hold out this seeded fraction of the classes as novel")
    p.add_argument("--novel", metavar="FILE", help="base-to-novel: file naming the novel classes, one per line")
    p.add_argument("--split-seed", type=int, default=0, metavar="S", help="seed of the class and clip splits")


def add_dataset_source(p: argparse.ArgumentParser) -> None:
    """The dataset and its classes alone (``eval-open-vocab`` draws its own class splits)."""
    p.add_argument("data", metavar="DATA", help="folder per class, CSV/TSV 'path,label' list, or original "
                   "'path num_frames label_index' list")
    p.add_argument("--labels", "--classes", dest="classes", metavar="NAME|FILE",
                   help="class list: ucf101, hmdb51, k400, k600, or a file (one name per line, or 'id,name' CSV); "
                   "fixes the candidates and their order (required for numeric labels)")
    p.add_argument("--root", metavar="DIR", help="base folder of relative paths in a list (default: the list's folder)")


# ----------------------------------------------------------------------------------------------
# Parsed options -> library objects


def labels_from(args: argparse.Namespace) -> list[str]:
    """The run's labels from ``--text`` or ``--labels``, checked (see :func:`actionclip.text.labels.check_labels`).

    Raises:
        UsageError: unreadable file, no labels, an empty label, or a duplicate (including two labels
            that differ only in case or spacing, which CLIP's tokenizer discards).
    """
    from actionclip.text.labels import check_labels, load_labels

    if args.labels and not os.path.exists(args.labels):  # a file of a list's name wins
        from actionclip.errors import UsageError
        from actionclip.text.classes import builtin_key, builtin_labels, not_a_list

        if builtin_key(args.labels) is None:
            raise UsageError(f"--labels {args.labels}: no such labels file, and {not_a_list(args.labels)}")
        return check_labels(builtin_labels(args.labels), args.labels)
    return load_labels(args.labels) if args.labels else check_labels(args.text or [], "--text")


def read_labels(path: str | os.PathLike) -> list[str]:
    """Checked labels from a file: one per line, blank lines and ``#`` lines skipped."""
    from actionclip.text.labels import load_labels

    return load_labels(os.fspath(path))


def templates_from(args: argparse.Namespace) -> list[str] | None:
    """``--template``/``--templates`` as a checked list, or None for the model's own templates."""
    if args.template is None and args.templates is None:
        return None
    from actionclip.text.templates import resolve_templates

    return resolve_templates(template=args.template, templates_file=args.templates)


def load_model(args: argparse.Namespace, frames: int | None = None) -> VideoTextModel:
    """The torch model named by ``--model`` on ``--device`` in ``--dtype`` (see :func:`actionclip.load`)."""
    from actionclip.api import load

    return load(args.model, device=args.device, dtype=getattr(args, "dtype", "auto"), frames=frames, backend="torch")


def has_class_split(args: argparse.Namespace) -> bool:
    """Whether the options ask for a base/novel class split (``--novel`` or ``--novel-fraction``)."""
    return args.novel is not None or args.novel_fraction is not None


def dataset_from(args: argparse.Namespace, subset: str | None) -> Any:
    """The dataset, restricted to the ``base`` or ``novel`` classes when a base/novel split is given.

    ``subset`` None means: novel when a split is given, else everything.
    """
    from actionclip.errors import UsageError
    from actionclip.training.datasets import load_dataset, split_classes

    ds = load_dataset(args.data, classes=args.classes, root=args.root, group_pattern=args.group_pattern)
    if not has_class_split(args):
        if subset not in (None, "all"):
            raise UsageError(f"--subset {subset} needs a base/novel split (--novel-fraction or --novel)")
        return ds
    if subset == "all":
        return ds
    novel = read_labels(args.novel) if args.novel else None
    base_ds, novel_ds = split_classes(ds, novel=novel,
                                      novel_fraction=0.5 if args.novel_fraction is None else args.novel_fraction,
                                      seed=args.split_seed)
    return base_ds if subset == "base" else novel_ds


def timeline_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`actionclip.temporal.timeline.timeline` from the detection options
    (``add_detection`` plus stride, smoothing, durations and batch size where the command has them)."""
    names = ("background", "window", "stride", "frames", "threshold", "hysteresis", "smooth", "min_duration",
             "min_gap", "score", "start", "end", "batch_size")
    kwargs = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    kwargs["templates"] = templates_from(args)
    return kwargs
