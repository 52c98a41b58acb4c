"""Prompt templates: the sentences a label is embedded in.

ActionCLIP embeds each label inside 16 templates and averages the per-template softmax scores. The
list and its order are the original's (``utils/Text_Prompt.py``; mmaction2's port uses the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from actionclip.errors import UsageError
from actionclip.text.labels import read_entries

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
    templates = [check_template(line, f"{path}:{number}") for number, line in read_entries(path, "templates")]
    if not templates:
        raise UsageError(f"{path}: templates file has no templates")
    return templates


def resolve_templates(
    template: str | None = None, templates_file: str | Path | None = None, templates: Sequence[str] | None = None,
    *, default: Sequence[str] | None = None,
) -> list[str]:
    """The templates to use: one custom template, a file of them, a list, or ``default`` (a model's
    own templates; ActionCLIP's 16 when not given)."""
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
    return list(TEMPLATES if default is None else default)
