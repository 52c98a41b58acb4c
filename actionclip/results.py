"""Per-video classification results: the record, how it is shown, and the resumable results file.

``classify`` on files and ``classify --index`` on stored embeddings produce the same records, shown
the same way (a table or one JSON object per video) and appended to the same kind of results file.

A record holds the video as named by the user, the model, frames/clips/crops, every label with its
probability (highest first), the resolved ``path`` and the *run key*. The results file
(:class:`ResultsFile`) appends one JSON object per video (written whole, flushed and fsync'ed), so
a run that is killed loses at most the video in progress. A rerun skips the videos already in the
file: a record matches when its resolved path and its run key agree. The run key hashes everything
that changes the probabilities: the model (registry name, or the resolved checkpoint path), frames,
clips, crops, the set of labels (after the tokenizer's lower-casing and white-space folding) and the
set of prompt templates. Device, dtype, backend, ``--top-k`` and worker count are not part of it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from actionclip.errors import ActionCLIPError, UsageError

__all__ = ["run_key", "make_record", "public_record", "PUBLIC_FIELDS", "format_human", "format_json", "error_line",
           "ResultsFile"]


def run_key(model: str, frames: int, clips: int, crops: int, labels: Iterable[str], templates: Iterable[str]) -> str:
    """Short hash of what determines a video's probabilities (see the module docstring)."""
    from actionclip.text.labels import label_key

    payload = {
        "model": model,
        "frames": frames,
        "clips": clips,
        "crops": crops,
        "labels": sorted(label_key(x) for x in labels),
        "templates": sorted(templates),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def make_record(video: str, path: str | None = None, *, model: str, frames: int, clips: int, crops: int,
                labels: Sequence[str], probs: Any, key: str | None = None, top_k: int | None = None) -> dict[str, Any]:
    """One video's record: its labels ranked by ``probs`` (``[L]``), all of them unless ``top_k``
    (ties keep label order). ``path`` and ``key`` are what a results file resumes by; a record
    without them (the server's answer) has only the public fields."""
    import numpy as np  # here: the CLI imports this module for --help, which must stay light

    probs = np.asarray(probs, dtype=np.float64)
    if top_k and top_k < len(probs):
        best = np.argpartition(-probs, top_k - 1)[:top_k]  # the top k without sorting all labels
        order = best[np.argsort(-probs[best], kind="stable")]
    else:
        order = np.argsort(-probs, kind="stable")
    record = {
        "video": video,
        "model": model,
        "frames": int(frames),
        "clips": int(clips),
        "crops": int(crops),
        "results": [{"label": labels[i], "prob": float(probs[i])} for i in order],
    }
    if path is not None:
        record["path"] = path
    if key is not None:
        record["key"] = key
    return record


#: the fields shown to a user (``classify --json``, the server); a results file adds ``path`` and ``key``
PUBLIC_FIELDS = ("video", "model", "frames", "clips", "crops", "results")


def public_record(record: dict[str, Any], top_k: int | None = None) -> dict[str, Any]:
    """The user-facing fields of ``record``, with only the ``top_k`` best results when given: what
    ``classify --json`` prints and what the server answers."""
    shown = {k: record[k] for k in PUBLIC_FIELDS}
    shown["results"] = record["results"][:top_k] if top_k else record["results"]
    return shown


def format_human(record: dict[str, Any], top_k: int | None) -> str:
    """The record as a small table: the video, then each label with its percentage."""
    results = record["results"][:top_k] if top_k else record["results"]
    width = max(len(r["label"]) for r in results)
    lines = [f"{record['video']}:"]
    lines += [f"  {r['label']:<{width}}  {100 * r['prob']:6.2f}%" for r in results]
    return "\n".join(lines)


def format_json(record: dict[str, Any], top_k: int | None) -> str:
    """The record as one JSON line (the public fields: without ``path`` and ``key``)."""
    return json.dumps(public_record(record, top_k), ensure_ascii=False)


def error_line(name: str, exc: BaseException) -> str:
    """``actionclip: error: <file>: <cause>``, without naming the file twice."""
    cause = str(exc) or type(exc).__name__
    if not isinstance(exc, ActionCLIPError):
        cause = f"{type(exc).__name__}: {cause}"
    if name in cause or os.path.basename(name) in cause.split(":", 1)[0]:
        return f"actionclip: error: {cause}"
    return f"actionclip: error: {name}: {cause}"


class ResultsFile:
    """An append-only JSON-lines file of per-video results that survives being killed.

    Opening it reads the records already there (for resuming), drops an incomplete last line left by
    a killed writer, and takes an exclusive lock so two runs cannot interleave lines. Each record is
    written with a single ``write`` of the whole line, then flushed and fsync'ed.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.records: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        # What this run created, removed again by close() if the run wrote no record (it failed
        # before its first video): a failed run leaves nothing behind.
        self._created: list[Path] = [p for p in (self.path, *self.path.parents) if not os.path.lexists(p)]
        self._appended = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            self._remove_created()
            raise UsageError(f"{self.path}: cannot open results file: {exc.strerror or exc}") from None
        try:
            self._lock()
            self._load_and_repair()
        except BaseException:
            os.close(self._fd)
            raise

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; concurrent runs are the user's business
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError(f"{self.path}: another actionclip run is writing this results file") from None

    def _load_and_repair(self) -> None:
        size = os.fstat(self._fd).st_size
        data = os.pread(self._fd, size, 0) if size else b""
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            record = self._parse(line)
            if record is None:
                self.warnings.append(f"{self.path}: line {number} is not a JSON object; ignored")
            else:
                self.records.append(record)
        if tail.strip():
            record = self._parse(tail)
            if record is not None:  # complete object, only its newline is missing (edited by hand)
                self.records.append(record)
                os.pwrite(self._fd, b"\n", size)
            else:  # a line cut short by a killed run: drop it so the next record starts cleanly
                os.ftruncate(self._fd, size - len(tail))
                self.warnings.append(f"{self.path}: removed an incomplete last line left by an interrupted run")
            os.fsync(self._fd)

    @staticmethod
    def _parse(line: bytes) -> dict[str, Any] | None:
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return None
        return record if isinstance(record, dict) else None

    def done(self, key: str) -> set[str]:
        """Resolved paths of the videos already recorded under run key ``key``."""
        return {r["path"] for r in self.records if r.get("key") == key and isinstance(r.get("path"), str)}

    def append(self, record: dict[str, Any]) -> None:
        """Append one record as one line, durably."""
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            os.lseek(self._fd, 0, os.SEEK_END)
            view = memoryview(line)
            while view:  # os.write may write less than asked (signals, pipes); finish the line
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError as exc:  # disk full, I/O error: a cut line is dropped on the next open
            raise UsageError(f"{self.path}: cannot write results file: {exc.strerror or exc}") from None
        self.records.append(record)
        self._appended = True

    def close(self) -> None:
        if self._fd >= 0:
            if not self._appended:
                self._remove_created()
            os.close(self._fd)  # also releases the lock (after the removal: no other run sees it meanwhile)
            self._fd = -1

    def _remove_created(self) -> None:
        for created in self._created:  # the file first, then the folders made for it, innermost first
            try:
                created.unlink() if created == self.path else created.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                return

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
