"""Class names as label text, and the built-in class lists that ship with the package.

Datasets name classes ``ApplyEyeMakeup`` or ``brush_hair``; the text encoder scores words, and
scores ``UnevenBars`` differently from ``uneven bars``. :func:`humanize` is the one rule that turns a
class name into the label text the model is given, and :func:`builtin_labels` applies it to the
built-in lists (``ucf101``, ``hmdb51``, ``k400``, ``k600``), so that ``classify --labels ucf101``,
``eval``, timelines, live runs, indexes and the server's lists all give the model the same words.
"""

from __future__ import annotations

import difflib
import re
from importlib import resources

from actionclip.errors import UsageError

__all__ = ["BUILTIN_CLASS_LISTS", "humanize", "builtin_key", "builtin_classes", "builtin_labels", "not_a_list"]

BUILTIN_CLASS_LISTS = ("ucf101", "hmdb51", "k400", "k600")
_ALIASES = {"kinetics400": "k400", "kinetics-400": "k400", "kinetics600": "k600",
            "kinetics-600": "k600", "ucf-101": "ucf101", "hmdb": "hmdb51", "hmdb-51": "hmdb51"}


def humanize(name: str) -> str:
    """A class name as natural label text: ``ApplyEyeMakeup`` -> ``apply eye makeup``,
    ``brush_hair`` -> ``brush hair``; names that already contain spaces only lose underscores."""
    name = name.strip().replace("_", " ")
    if " " not in name and any(c.isupper() for c in name[1:]):
        # CamelCase: split before each capital that follows a lower-case letter or digit, and before
        # the last capital of an acronym run ("HTTPServer" -> "HTTP Server").
        name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
        return name.lower()
    if " " not in name:
        return name.lower()
    return re.sub(r"\s+", " ", name)


def builtin_key(name: str) -> str | None:
    """The built-in list ``name`` means (``ucf101``; aliases such as ``kinetics400`` too), or None."""
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    return key if key in BUILTIN_CLASS_LISTS else None


def not_a_list(name: str) -> str:
    """Why ``name`` names no built-in list: the lists there are, and the closest one when it looks like a typo."""
    close = difflib.get_close_matches(name.strip().lower(), [*BUILTIN_CLASS_LISTS, *_ALIASES], n=1, cutoff=0.6)
    hint = f"; did you mean {builtin_key(close[0])!r}?" if close else ""
    return f"not a built-in class list (built-in: {', '.join(BUILTIN_CLASS_LISTS)}){hint}"


def builtin_classes(name: str) -> list[str]:
    """The original class names of a built-in list, as its dataset spells them."""
    key = builtin_key(name)
    if key is None:
        raise UsageError(f"{name}: {not_a_list(name)}")
    text = resources.files("actionclip").joinpath("data", "classes", f"{key}.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def builtin_labels(name: str) -> list[str]:
    """A built-in list as the label text the model is given (:func:`humanize` of each class name)."""
    return [humanize(n) for n in builtin_classes(name)]
