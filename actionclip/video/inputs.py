"""Command-line video inputs (files, folders, glob patterns) to a list of videos, each once.

``classify``, ``index`` and any batch command take the same inputs; this is where they become
videos: a file is taken as is, a folder gives the video files below it, a pattern is globbed. An
input that yields nothing becomes an :class:`InputError`, reported beside per-video failures.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["VideoInput", "InputError", "expand_videos"]

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class VideoInput:
    """One video to process: ``name`` as shown to the user, ``path`` resolved (the resume key)."""

    name: str
    path: str


@dataclass(frozen=True)
class InputError:
    """A command-line input that yields no video (missing file, empty directory, ...)."""

    name: str
    cause: str


def _walk_videos(root: Path) -> Iterator[Path]:
    """Video files under ``root``, sorted, skipping hidden files and folders (``.git``, ``._x.mp4``).

    Only here are extensions checked: a file named explicitly is always tried, whatever its extension.
    """
    from actionclip.video import VIDEO_EXTENSIONS  # imported here: actionclip.video loads numpy

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_EXTENSIONS:
                yield Path(dirpath) / name


def expand_videos(specs: Iterable[str]) -> list[VideoInput | InputError]:
    """Turn command-line inputs into videos, in order, each resolved path once.

    A file is taken as is (its extension is not checked: decoding decides); a directory gives the
    video files below it (by extension); a pattern with ``* ? [`` is globbed (``**`` recursive).
    Inputs that give nothing become :class:`InputError` entries, so the caller can report them
    alongside the per-video errors.
    """
    out: list[VideoInput | InputError] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        resolved = str(path.resolve())
        if resolved not in seen:
            seen.add(resolved)
            out.append(VideoInput(str(path), resolved))

    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            found = list(_walk_videos(path))
            if not found:
                out.append(InputError(spec, "directory contains no video files "
                                      "(.mp4, .avi, .mkv, .webm, .mov, .gif, ... searched recursively)"))
            for video in found:
                add(video)
        elif path.exists():
            add(path)
        elif _GLOB_CHARS & set(spec):
            matches = sorted(glob.glob(os.path.expanduser(spec), recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file()]
            for m in matches:
                if Path(m).is_dir():
                    files.extend(_walk_videos(Path(m)))
            if not files:
                out.append(InputError(spec, "no file matches this pattern"))
            for video in files:
                add(video)
        else:
            out.append(InputError(spec, "no such file or directory"))
    return out
