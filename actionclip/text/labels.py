"""Labels: the actions a user names, checked once, read from files.

What the model sees of a label is what CLIP's tokenizer makes of it: lower-cased, white space folded.
Two labels that differ only there are one prompt to the model, so they are duplicates here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from actionclip.errors import UsageError


def label_key(label: str) -> str:
    """What the model sees of a label: CLIP's tokenizer lower-cases and folds white space."""
    return " ".join(label.split()).lower()


class CheckedLabels(list[str]):
    """Labels that :func:`check_labels` accepted (a list of str). Passing them on is passing the
    check on: the layers below the boundary that checked them (label cache, encoder) do not check
    again."""


def check_labels(labels: Sequence[str], source: str = "labels") -> CheckedLabels:
    """Labels must be non-empty and distinct. Two labels that differ only in case or spacing are
    duplicates: CLIP's tokenizer lower-cases and folds white space, so the model sees one prompt.
    Checked once: :class:`CheckedLabels` come back as they are."""
    if isinstance(labels, CheckedLabels):
        return labels
    if isinstance(labels, str):
        labels = [labels]
    cleaned = [label.strip() for label in labels]
    if not cleaned:
        raise UsageError(f"{source}: no labels given")
    seen: dict[str, str] = {}
    for raw, label in zip(labels, cleaned):
        if not label:
            raise UsageError(f"{source}: empty label {raw!r}")
        key = label_key(label)
        if key in seen:
            same = "" if seen[key] == label else f" (the same text for the model as {seen[key]!r})"
            raise UsageError(f"{source}: duplicate label {label!r}{same}")
        seen[key] = label
    return CheckedLabels(cleaned)


def load_labels(path: str | Path) -> CheckedLabels:
    """One label per line; blank lines and lines starting with '#' are ignored."""
    path = Path(path)
    return check_labels([line for _, line in read_entries(path, "labels")], str(path))


def read_entries(path: Path, what: str) -> list[tuple[int, str]]:
    """(line number, stripped text) of a UTF-8 file, skipping blank lines and '#' comments."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read {what} file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: {what} file is not UTF-8 text") from None
    return [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith("#")]
