"""Argument types, option groups and loaders shared by the command modules.

Light at import time (argparse and os only): every command module imports this at module level, and
``actionclip --help`` must not pay for torch or PyAV. Heavy imports happen inside the functions.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = [
    "positive_int",
    "non_negative_int",
    "positive_float",
    "non_negative_float",
    "probability",
    "MODEL_HELP",
    "add_label_args",
    "add_model_arg",
    "add_template_args",
    "add_device_args",
    "get_labels",
    "read_labels",
    "pick_device",
    "pick_dtype",
    "load_model",
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


# ----------------------------------------------------------------------------------------------
# Option groups

MODEL_HELP = "registry name (see 'actionclip models') or checkpoint path; default: %(default)s"


def add_label_args(p: argparse.ArgumentParser) -> None:
    """``-t/--text LABEL`` (repeatable) or ``--labels FILE``: exactly one is required."""
    labels = p.add_mutually_exclusive_group(required=True)
    labels.add_argument("-t", "--text", action="append", metavar="LABEL", help="an action label (repeat for each)")
    labels.add_argument("--labels", metavar="FILE",
                        help="text file with one label per line ('#' starts a comment line)")


def add_model_arg(p: argparse.ArgumentParser, help: str = MODEL_HELP) -> None:
    """``-m/--model NAME|PATH``, defaulting to the registry's default model."""
    from actionclip.registry import DEFAULT_MODEL  # light: no torch

    p.add_argument("-m", "--model", default=DEFAULT_MODEL, metavar="NAME|PATH", help=help)


def add_template_args(p: argparse.ArgumentParser) -> None:
    """``--template S`` or ``--templates FILE`` (at most one); neither means the 16 defaults."""
    tmpl = p.add_mutually_exclusive_group()
    tmpl.add_argument("--template", metavar="S",
                      help="a single prompt template containing '{}' instead of the 16 defaults")
    tmpl.add_argument("--templates", metavar="FILE", help="file of prompt templates, one per line")


def add_device_args(p: argparse.ArgumentParser, dtype: bool = True) -> None:
    """``--device auto|cpu|cuda`` and, unless ``dtype`` is False, ``--dtype auto|fp32|bf16|fp16``."""
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: cuda if available")
    if dtype:
        p.add_argument("--dtype", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                       help="compute precision (auto: bf16 where the CPU/GPU runs it natively, else fp16 on cuda, fp32 on cpu)")


# ----------------------------------------------------------------------------------------------
# Turning the options into labels, devices and models


def get_labels(text: list[str] | None, labels_file: str | None) -> list[str]:
    """The run's labels from ``--text`` or ``--labels``, checked (see :func:`templates.check_labels`).

    Raises:
        UsageError: unreadable file, no labels, an empty label, or a duplicate (including two labels
            that differ only in case or spacing, which CLIP's tokenizer discards).
    """
    from actionclip.templates import check_labels, load_labels

    return load_labels(labels_file) if labels_file else check_labels(text or [], "--text")


def read_labels(path: str | os.PathLike) -> list[str]:
    """Checked labels from a file: one per line, blank lines and ``#`` lines skipped."""
    return get_labels(None, os.fspath(path))


def pick_device(choice: str) -> str:
    """``--device`` value -> torch device string; ``auto`` is CUDA when available.

    Raises:
        UsageError: CUDA requested on a machine without it.
    """
    from actionclip import runtime

    return runtime.resolve_device(choice)


def pick_dtype(choice: str, device: str):
    """``--dtype`` value -> torch dtype. ``auto`` is the fast native choice (see
    :func:`actionclip.runtime.resolve`): bf16 on CPUs with AMX/AVX512-BF16 and on CUDA cards with
    bf16, fp16 on older cards, fp32 on other CPUs."""
    from actionclip import runtime

    return runtime.resolve(device, choice).torch_dtype


def load_model(args: argparse.Namespace, frames: int | None = None) -> Any:
    """The torch model named by ``--model`` on ``--device`` in ``--dtype`` (see :func:`actionclip.load`)."""
    from actionclip.model import load

    device = pick_device(args.device)
    return load(args.model, device=device, dtype=pick_dtype(args.dtype, device), frames=frames)
