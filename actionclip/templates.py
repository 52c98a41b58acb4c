"""Prompt templates and label checks.

ActionCLIP embeds each label inside 16 templates and averages the per-template softmax scores. The
list and its order are the original's (``utils/Text_Prompt.py``; mmaction2's port uses the same).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from actionclip.errors import UsageError

TEMPLATES: list[str] = [
    "a photo of action {}",
    "a picture of action {}",
    "Human action of {}",
    "{}, an action",
    "{} this is an action",
    "{}, a video of action",
    "Playing action of {}",
    "{}",
    "Playing a kind of action, {}",
    "Doing a kind of action, {}",
    "Look, the human is {}",
    "Can you recognize the action of {}?",
    "Video classification of {}",
    "A video of {}",
    "The man is {}",
    "The woman is {}",
]


def check_template(template: str, source: str = "template") -> str:
    if template.count("{}") != 1:
        raise UsageError(f"{source}: {template!r} must contain exactly one '{{}}' where the label goes")
    # A stray '{' or '}' would break str.format; test it once here rather than on every label.
    try:
        template.format("x")
    except (IndexError, KeyError, ValueError) as exc:
        raise UsageError(f"{source}: {template!r} is not a valid template ({exc})") from None
    return template


def load_templates(path: str | Path) -> list[str]:
    """One template per line; blank lines and lines starting with '#' are ignored."""
    path = Path(path)
    templates = [check_template(line, f"{path}:{number}") for number, line in _read_entries(path, "templates")]
    if not templates:
        raise UsageError(f"{path}: templates file has no templates")
    return templates


def resolve_templates(
    template: str | None = None, templates_file: str | Path | None = None, templates: Sequence[str] | None = None
) -> list[str]:
    """The templates to use: one custom template, a file of them, a list, or the 16 defaults."""
    chosen = [template is not None, templates_file is not None, templates is not None]
    if sum(chosen) > 1:
        raise UsageError("give at most one of a template, a templates file or a list of templates")
    if template is not None:
        return [check_template(template)]
    if templates_file is not None:
        return load_templates(templates_file)
    if templates is not None:
        if isinstance(templates, str):
            return [check_template(templates)]
        checked = [check_template(t) for t in templates]
        if not checked:
            raise UsageError("the list of templates is empty")
        return checked
    return list(TEMPLATES)


def label_key(label: str) -> str:
    """What the model sees of a label: CLIP's tokenizer lower-cases and folds white space."""
    return " ".join(label.split()).lower()


def check_labels(labels: Sequence[str], source: str = "labels") -> list[str]:
    """Labels must be non-empty and distinct. Two labels that differ only in case or spacing are
    duplicates: CLIP's tokenizer lower-cases and folds white space, so the model sees one prompt."""
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
    return cleaned


def load_labels(path: str | Path) -> list[str]:
    """One label per line; blank lines and lines starting with '#' are ignored."""
    path = Path(path)
    return check_labels([line for _, line in _read_entries(path, "labels")], str(path))


def _read_entries(path: Path, what: str) -> list[tuple[int, str]]:
    """(line number, stripped text) of a UTF-8 file, skipping blank lines and '#' comments."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read {what} file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: {what} file is not UTF-8 text") from None
    return [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith("#")]
