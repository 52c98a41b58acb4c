"""A video's labels ranked by probability, as one record: the shape ``classify --json`` prints, the
results file stores and the server answers.

Built in one place so that every front end (command line, JSON-lines file, HTTP) describes a
classification with the same keys, and a client can read any of them with one parser.
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["ranked", "classification_record", "public_record", "PUBLIC_FIELDS"]

#: the fields shown to a user (``classify --json``, the server); a results file adds ``path`` and ``key``
PUBLIC_FIELDS = ("video", "model", "frames", "clips", "crops", "results")


def ranked(labels: Sequence[str], probs: Sequence[float]) -> list[dict[str, Any]]:
    """``[{"label", "prob"}, ...]`` for every label, highest probability first (ties keep label order)."""
    pairs = sorted(zip(labels, (float(p) for p in probs)), key=lambda lp: -lp[1])
    return [{"label": label, "prob": prob} for label, prob in pairs]


def classification_record(video: str, model: str, frames: int, clips: int, crops: int, labels: Sequence[str],
                          probs: Sequence[float], **extra: Any) -> dict[str, Any]:
    """The full record of one classified video; ``extra`` fields (``path``, ``key``, ...) follow."""
    return {"video": video, "model": model, "frames": int(frames), "clips": int(clips), "crops": int(crops),
            "results": ranked(labels, probs), **extra}


def public_record(record: dict[str, Any], top_k: int | None = None) -> dict[str, Any]:
    """The user-facing fields of ``record``, with only the ``top_k`` best results when given."""
    shown = {k: record[k] for k in PUBLIC_FIELDS}
    shown["results"] = record["results"][:top_k] if top_k else record["results"]
    return shown
