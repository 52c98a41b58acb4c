"""Our timelines as detection results: ActivityNet JSON or THUMOS14 text, so the protocols can score them.

A timeline's segments become predictions one for one: the segment's label, its start and end, and
its mean decision score as the confidence (the score that ranks predictions for AP). The video id is
the file's stem (``v_abc.mp4`` -> ``v_abc``): ActivityNet's database keys have no ``v_`` prefix,
so :func:`match_video_ids` maps stems to ground-truth ids for ``eval-timeline``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from actionclip.errors import ActionCLIPError, UsageError
from actionclip.files import write_text

__all__ = ["FORMATS", "video_id", "activitynet_document", "thumos14_text", "write_predictions",
           "run_timelines", "match_video_ids"]

FORMATS = ("activitynet", "thumos14")


def video_id(path: str | os.PathLike) -> str:
    """The id a video's predictions are filed under: its file name without the extension."""
    return Path(path).stem


def _rows(results: Iterable[Any], ids: Mapping[str, str] | None) -> Iterable[tuple[str, Any]]:
    for result in results:
        vid = (ids or {}).get(str(result.video)) or video_id(result.video)
        for seg in result.segments:
            yield vid, seg


def activitynet_document(results: Iterable[Any], *, ids: Mapping[str, str] | None = None,
                         details: str = "actionclip timeline") -> dict:
    """``{"version", "results": {video: [{"label", "score", "segment"}]}, "external_data"}``; every
    video appears, with an empty list when it has no segment. ``ids`` maps a result's video path to
    the id to file it under (default: the file stem)."""
    results = list(results)
    doc: dict[str, Any] = {"version": "VERSION 1.3", "results": {}, "external_data": {"used": True, "details": details}}
    for result in results:
        doc["results"].setdefault((ids or {}).get(str(result.video)) or video_id(result.video), [])
    for vid, seg in _rows(results, ids):
        doc["results"][vid].append({"label": seg.label, "score": round(float(seg.mean_score), 6),
                                    "segment": [round(float(seg.start), 3), round(float(seg.end), 3)]})
    return doc


def thumos14_text(results: Iterable[Any], class_ids: Mapping[str, int], *,
                  ids: Mapping[str, str] | None = None) -> str:
    """``video t_start t_end class_id score`` lines; ``class_ids`` maps each label to its id in
    ``detclasslist.txt``."""
    lines = []
    for vid, seg in _rows(results, ids):
        if seg.label not in class_ids:
            raise UsageError(f"label {seg.label!r}: no THUMOS14 class id for it (class_ids)")
        lines.append(f"{vid} {seg.start:.3f} {seg.end:.3f} {class_ids[seg.label]} {seg.mean_score:.6f}")
    return "".join(line + "\n" for line in lines)


def write_predictions(path: str | os.PathLike, results: Sequence[Any], format: str, *,
                      class_ids: Mapping[str, int] | None = None, ids: Mapping[str, str] | None = None) -> Path:
    """Write ``results`` (timelines) to ``path`` in ``format`` (``activitynet`` or ``thumos14``), atomically.

    For THUMOS14 without ``class_ids``, a label's id is its 1-based position in the first result's
    labels (give the labels in ``detclasslist.txt`` order).
    """
    if format not in FORMATS:
        raise UsageError(f"format {format!r}: expected one of {', '.join(FORMATS)}")
    if format == "activitynet":
        return write_text(path, json.dumps(activitynet_document(results, ids=ids), indent=1, ensure_ascii=False) + "\n")
    if class_ids is None:
        labels = list(results[0].labels) if results else []
        class_ids = {label: i for i, label in enumerate(labels, 1)}
    return write_text(path, thumos14_text(results, class_ids, ids=ids))


def run_timelines(model: Any, videos: Sequence[str | os.PathLike], labels: Sequence[str], *,
                  on_error: Callable[[str, ActionCLIPError], None] | None = None,
                  on_done: Callable[[Any], None] | None = None, **options: Any) -> list[Any]:
    """:func:`actionclip.temporal.timeline.timeline` on every video with the same model and options.

    A video that fails (unreadable, no frames) is reported to ``on_error(video, error)`` and the batch
    goes on; without ``on_error`` the first failure is raised.
    """
    from actionclip.temporal.timeline import timeline

    results = []
    for video in videos:
        try:
            result = timeline(model, video, labels, **options)
        except ActionCLIPError as exc:
            if on_error is None:
                raise
            on_error(str(video), exc)
            continue
        results.append(result)
        if on_done is not None:
            on_done(result)
    return results


def _id_candidates(path: str | os.PathLike) -> list[str]:
    """Ids a file may go by: its stem, the stem without ActivityNet's ``v_``, then ``folder/stem``,
    ``parent/folder/stem``, ... (to tell apart files that share a name)."""
    p = Path(path)
    stem = p.stem
    out = [stem] + ([stem[2:]] if stem.startswith("v_") else [])
    parts = list(p.with_suffix("").parts)
    out += ["/".join(parts[-k:]) for k in range(2, len(parts) + 1)]
    return out


def match_video_ids(paths: Sequence[str | os.PathLike], known: Iterable[str]
                    ) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Map each video path to a ground-truth id (see :func:`_id_candidates`), the longest that matches.

    Returns ``({path: id}, [(path, cause)])`` for the paths with no id, or whose id another path
    also takes (two files named alike: give their ids as ``folder/name``).
    """
    known = set(known)
    found: dict[str, str] = {}
    missing: list[tuple[str, str]] = []
    for path in paths:
        # The most specific id the ground truth knows: 'a/test' before 'test'.
        vid = max((c for c in _id_candidates(path) if c in known), key=len, default=None)
        if vid is None:
            missing.append((str(path), "no video with this id in the ground truth"))
        else:
            found[str(path)] = vid
    taken: dict[str, list[str]] = {}
    for path, vid in found.items():
        taken.setdefault(vid, []).append(path)
    for vid, holders in taken.items():
        if len(holders) > 1:
            for path in holders:
                del found[path]
                missing.append((path, f"{len(holders)} files match the id {vid!r} (name it folder/name)"))
    return found, missing
