"""Form fields to checked options: each bad value is a 400 naming the field and what it must be.

Fields are the names of the library's parameters (``top_k``, ``clips``, ``min_duration``, ...), one
value each except the repeatable ``labels``, ``templates`` and ``background``. An unknown field is an
error too, so that a typo (``label=``) is not silently ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from actionclip.serve.problems import Problem

__all__ = ["Fields", "REPEATABLE"]

REPEATABLE = frozenset({"labels", "templates", "background"})


class Fields:
    """Typed, bounded access to a form's text fields (name -> values)."""

    def __init__(self, fields: Mapping[str, Sequence[str]], allowed: Iterable[str]) -> None:
        self.fields = fields
        allowed = set(allowed)
        for name, values in fields.items():
            if name not in allowed:
                raise Problem(400, f"unknown field {name!r} (expected: {', '.join(sorted(allowed))})")
            if len(values) > 1 and name not in REPEATABLE:
                raise Problem(400, f"field {name!r} given {len(values)} times; give it once")

    def text(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0].strip() if values else None

    def texts(self, name: str) -> list[str] | None:
        """A repeatable field's values, or None when absent."""
        values = self.fields.get(name)
        return list(values) if values else None

    def integer(self, name: str, default: int | None, lo: int, hi: int) -> int | None:
        raw = self.text(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise Problem(400, f"{name} {raw!r}: not an integer") from None
        if not lo <= value <= hi:
            raise Problem(400, f"{name} {value}: must be between {lo} and {hi}")
        return value

    def number(self, name: str, default: float | None, lo: float = 0.0, hi: float = math.inf,
               *, open_low: bool = False) -> float | None:
        raw = self.text(name)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            raise Problem(400, f"{name} {raw!r}: not a number") from None
        if not (value > lo if open_low else value >= lo) or not value <= hi or math.isnan(value):
            low = f"> {lo:g}" if open_low else f">= {lo:g}"
            bound = low if hi == math.inf else f"{low} and <= {hi:g}"
            raise Problem(400, f"{name} {raw}: must be {bound}")
        return value

    def choice(self, name: str, default: str, choices: Sequence[object]) -> str:
        raw = self.text(name)
        if raw is None or raw == "":
            return default
        if raw not in [str(c) for c in choices]:
            raise Problem(400, f"{name} {raw!r}: must be one of {', '.join(map(str, choices))}")
        return raw
