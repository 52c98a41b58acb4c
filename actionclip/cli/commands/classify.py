"""``actionclip classify``: rank actions named in words for each of many videos.

Inputs are files, directories (searched recursively for video files) and glob patterns. Labels are
embedded once per run; for each video only the video encoder runs, while the next videos are decoded
in background threads (:func:`actionclip.pipeline.prefetch`). A video that fails prints one error line
and the run goes on; the exit code is non-zero if any failed.

``--output FILE`` appends one JSON object per video (written whole, flushed and fsync'ed), so a run
that is killed loses at most the video in progress. Running the same command again skips the videos
already in the file: a record matches when its resolved path and its *run key* agree. The run key
hashes everything that changes the probabilities: the model (registry name, or the resolved
checkpoint path), frames, clips, crops, the set of labels (after the tokenizer's lower-casing and
white-space folding) and the set of prompt templates. Device, dtype, backend, ``--top-k`` and
worker count are not part of it.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actionclip.cli import options
from actionclip.cli.options import positive_int
from actionclip.errors import ActionCLIPError, UsageError

__all__ = [
    "register",
    "run",
    "expand_videos",
    "run_key",
    "ResultsFile",
]

_GLOB_CHARS = frozenset("*?[")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``classify`` sub-command."""
    p = subparsers.add_parser(
        "classify",
        help="rank actions named in words for videos, folders or globs",
        description="Rank the given action labels for each video (zero-shot, ActionCLIP). "
        "Every label is shown with its probability unless --top-k is given.",
        epilog="example: actionclip classify clip.mp4 --text running --text walking --text 'playing guitar'",
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files, directories (recursive) or glob patterns")
    options.add_labels(p)
    options.add_model(p)
    options.add_frames(p)
    options.add_views(p)
    p.add_argument("--top-k", type=positive_int, metavar="N", help="show only the N most likely labels")
    options.add_templates(p)
    options.add_runtime(p)
    options.add_backend(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per video instead of a table")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="append one JSON line per video to FILE; rerunning skips videos already in it")
    options.add_decoding(p)
    options.add_batch_size(p)
    p.set_defaults(func=run)


# ----------------------------------------------------------------------------------------------
# Inputs


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


# ----------------------------------------------------------------------------------------------
# Results file (JSON lines, resumable)


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
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
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

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # also releases the lock
            self._fd = -1

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------
# Running


def _error_line(name: str, exc: BaseException) -> str:
    """``actionclip: error: <file>: <cause>``, without naming the file twice."""
    cause = str(exc) or type(exc).__name__
    if not isinstance(exc, ActionCLIPError):
        cause = f"{type(exc).__name__}: {cause}"
    if name in cause or os.path.basename(name) in cause.split(":", 1)[0]:
        return f"actionclip: error: {cause}"
    return f"actionclip: error: {name}: {cause}"


def _format_human(record: dict[str, Any], top_k: int | None) -> str:
    results = record["results"][:top_k] if top_k else record["results"]
    width = max(len(r["label"]) for r in results)
    lines = [f"{record['video']}:"]
    lines += [f"  {r['label']:<{width}}  {100 * r['prob']:6.2f}%" for r in results]
    return "\n".join(lines)


def _format_json(record: dict[str, Any], top_k: int | None) -> str:
    from actionclip.model.ranking import public_record

    return json.dumps(public_record(record, top_k), ensure_ascii=False)


def _model_id(model_arg: str) -> str:
    """What identifies the model in the run key: a registry name, or the checkpoint's real path."""
    path = Path(model_arg).expanduser()
    return str(path.resolve()) if path.exists() else model_arg.strip().lower()


def _load_model(args: argparse.Namespace):
    """The torch model, or the ONNX Runtime one for ``--backend onnx`` (which never imports torch)."""
    if args.backend == "onnx":
        try:
            from actionclip.onnx import backend as onnx_backend
        except ImportError as exc:
            raise UsageError(f"--backend onnx: the ONNX backend cannot be loaded ({exc}); "
                             "install it with: pip install 'actionclip[onnx]'") from None
        if not Path(args.model).expanduser().exists():
            raise UsageError(f"--backend onnx: --model {args.model!r} must be the folder written by "
                             "'actionclip export MODEL --onnx DIR' (or its JSON file)")
        if args.dtype != "auto":
            raise UsageError(f"--backend onnx: --dtype {args.dtype} is not supported (the export's precision is used)")
        providers = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
        return onnx_backend.load(Path(args.model).expanduser(), providers=providers.get(args.device))
    return options.load_model(args)


@dataclass(frozen=True)
class _Prepare:
    """``VideoInput -> [V, T, 3, R, R]`` normalised views, for the decoding threads."""

    views: Any
    frames: int
    clips: int
    crops: int

    def __call__(self, video: VideoInput) -> Any:
        # Read by the name the user gave, so that errors name the file as they typed it.
        return self.views(video.name, frames=self.frames, clips=self.clips, crops=self.crops)


def run(args: argparse.Namespace) -> int:
    """Classify every video; returns 0 if all succeeded, 1 if any failed."""
    labels = options.labels_from(args)
    templates = options.templates_from(args)
    if len(labels) == 1:
        print(f"actionclip: warning: only one label ({labels[0]!r}): its probability is always 1", file=sys.stderr)

    inputs = expand_videos(args.videos)
    failed = 0
    for bad in (i for i in inputs if isinstance(i, InputError)):
        print(f"actionclip: error: {bad.name}: {bad.cause}", file=sys.stderr)
        failed += 1
    videos = [i for i in inputs if isinstance(i, VideoInput)]
    if not videos:
        return 1

    results_file = ResultsFile(args.output) if args.output else None
    try:
        for warning in results_file.warnings if results_file else ():
            print(f"actionclip: warning: {warning}", file=sys.stderr)
        model = _load_model(args)
        frames = args.frames or int(model.num_frames)
        templates = templates or model.templates
        key = run_key(_model_id(args.model), frames, args.clips, args.crops, labels, templates)
        if results_file:
            done = results_file.done(key)
            skipped = [v for v in videos if v.path in done]
            if skipped:
                print(f"actionclip: skipping {len(skipped)} video(s) already in {args.output}", file=sys.stderr)
            videos = [v for v in videos if v.path not in done]
        failed += _classify_all(args, model, videos, labels, templates, frames, key, results_file)
    finally:
        if results_file:
            results_file.close()
    return 1 if failed else 0


def _classify_all(args, model, videos, labels, templates, frames, key, results_file) -> int:
    """Run the model over ``videos``; print and record each; return the number that failed."""
    from tqdm import tqdm

    from actionclip.model.ranking import classification_record
    from actionclip.pipeline import encode_videos

    if not videos:
        return 0
    model_name = str(getattr(model, "name", None) or args.model)
    on_gpu = "cuda" in str(getattr(model, "device", "")) or "CUDA" in str(getattr(model, "providers", [""])[0])
    batch_size = args.batch_size or (8 if on_gpu else 1)
    prepare = _Prepare(model.views, frames, args.clips, args.crops)
    failed = 0
    label_emb = model.encode_labels(labels, templates)  # once per run: [K, L, D]
    bar = tqdm(total=len(videos), unit="video", file=sys.stderr, disable=not sys.stderr.isatty(), leave=False)
    encoded = encode_videos(model, videos, prepare, batch_size=batch_size, workers=args.workers)
    # closing: an error that ends the run (results file unwritable) stops the decoders at once.
    with bar, contextlib.closing(encoded):
        for batch, features in encoded:
            if isinstance(features, BaseException):
                for video in batch:
                    bar.write(_error_line(video.name, features), file=sys.stderr)
                failed += len(batch)
                bar.update(len(batch))
                continue
            rows = model._ops.to_numpy(model.probabilities(features, label_emb)).tolist()  # [B, L]
            for video, row in zip(batch, rows):
                record = classification_record(video.name, model_name, frames, args.clips, args.crops, labels, row,
                                               path=video.path, key=key)
                if results_file:
                    results_file.append(record)
                text = _format_json(record, args.top_k) if args.json else _format_human(record, args.top_k)
                bar.write(text, file=sys.stdout)
                sys.stdout.flush()
            bar.update(len(batch))
    return failed
