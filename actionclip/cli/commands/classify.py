"""``actionclip classify``: rank actions named in words for each of many videos.

Inputs are files, directories (searched recursively for video files) and glob patterns. Labels are
embedded once per run; for each video only the video encoder runs, while the next videos are decoded
in worker processes (:func:`actionclip.pipeline.encode_videos`, ``--workers``). A video that fails
prints one error line and the run goes on; the exit code is non-zero if any failed.

``--output FILE`` appends one JSON object per video and a rerun skips the videos already in it
(:mod:`actionclip.results` says how). Label embeddings are cached on disk
(:mod:`actionclip.workflows.label_cache`), so a second run with the same labels starts at once.

``--index INDEX`` classifies every video of an index built by ``actionclip index`` from its stored
embeddings, without decoding (:meth:`actionclip.collection.Index.classify`): the same records.
``--ray [ADDRESS]`` decodes and encodes on a Ray cluster (:mod:`actionclip.collection.raydata`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from actionclip.cli import options
from actionclip.cli.options import positive_int
from actionclip.errors import UsageError
from actionclip.loading.identity import model_id
from actionclip.results import ResultsFile, error_line, format_human, format_json, make_record, run_key

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel
    from actionclip.onnx.backend import OnnxActionCLIP

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``classify`` sub-command."""
    p = subparsers.add_parser(
        "classify",
        help="rank actions named in words for videos, folders or globs",
        description="Rank the given action labels for each video (zero-shot, ActionCLIP). "
        "Every label is shown with its probability unless --top-k is given.",
        epilog="example: actionclip classify clip.mp4 --text running --text walking --text 'playing guitar'",
    )
    p.add_argument("videos", nargs="*", metavar="VIDEO", help="video files, directories (recursive) or glob patterns")
    p.add_argument("--index", metavar="INDEX",
                   help="classify every video of this index (from 'actionclip index') from its stored embeddings")
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
    options.add_ray(p)
    p.set_defaults(func=run)


# ----------------------------------------------------------------------------------------------
# Inputs


# ----------------------------------------------------------------------------------------------
# Running


def _load_model(args: argparse.Namespace) -> VideoTextModel:
    """The torch model, or the ONNX Runtime one for ``--backend onnx`` (which never imports torch; one
    line on stderr says which graphs run)."""
    if args.backend != "onnx" and args.onnx_precision != "auto":
        raise UsageError(f"--onnx-precision {args.onnx_precision} needs --backend onnx")
    if args.backend == "onnx":
        from actionclip.extras import require

        require("onnx", "--backend onnx", modules=["onnxruntime"])
        if not Path(args.model).expanduser().exists():
            raise UsageError(f"--backend onnx: --model {args.model!r} must be the folder written by "
                             "'actionclip export MODEL --onnx DIR' (or its JSON file)")
        if args.dtype != "auto":
            raise UsageError(f"--backend onnx: --dtype {args.dtype} is not supported (the export's precision is used)")
        from actionclip.api import load

        model = cast("OnnxActionCLIP", load(args.model, device=args.device, backend="onnx",
                                             onnx_precision=args.onnx_precision))
        print(f"actionclip: running the {model.precision} ONNX graphs of {model.metadata_path.parent} "
              f"({model.providers[0]})", file=sys.stderr)
        return model
    return options.load_model(args)


def run(args: argparse.Namespace) -> int:
    """Classify every video; returns 0 if all succeeded, 1 if any failed."""
    labels = options.labels_from(args)
    templates = options.templates_from(args)
    if len(labels) == 1:
        print(f"actionclip: warning: only one label ({labels[0]!r}): its probability is always 1", file=sys.stderr)
    if bool(args.index) == bool(args.videos):
        raise UsageError("give the videos to classify, or --index INDEX, not both" if args.index
                         else "no videos given (or --index INDEX)")
    if args.index and args.ray:
        raise UsageError("--index needs no --ray: stored embeddings are classified without decoding")

    failed = 0
    videos: list[Any] = []
    if not args.index:
        from actionclip.video.inputs import InputError, VideoInput, expand_videos  # here: numpy, PyAV

        inputs = expand_videos(args.videos)
        for bad in (i for i in inputs if isinstance(i, InputError)):
            print(f"actionclip: error: {bad.name}: {bad.cause}", file=sys.stderr)
            failed += 1
        videos = [i for i in inputs if isinstance(i, VideoInput)]
        if not videos:
            return 1
        if len(videos) > 1 and not args.ray:
            from actionclip.workers import warm_up

            warm_up(args.workers)  # the decode workers' imports overlap the model's loading

    results_file = ResultsFile(args.output) if args.output else None
    try:
        for warning in results_file.warnings if results_file else ():
            print(f"actionclip: warning: {warning}", file=sys.stderr)
        if args.index:
            return _classify_index(args, labels, templates, results_file)
        model = _load_model(args)
        frames = args.frames or int(model.num_frames)
        templates = templates or model.templates
        key = run_key(model_id(args.model) + _precision_tag(model), frames, args.clips, args.crops, labels, templates)
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


def _precision_tag(model: VideoTextModel) -> str:
    """``" (int8)"`` for quantised ONNX graphs: their records name it, and a results file written with
    fp32 graphs is not taken as done by them (fp32 records keep their name and key)."""
    return " (int8)" if model.dtype_name == "int8" else ""


def _show(args: argparse.Namespace, record: dict[str, Any], results_file: ResultsFile | None, write: Any) -> None:
    """Record (``--output``) and print one video's result."""
    if results_file:
        results_file.append(record)
    write(format_json(record, args.top_k) if args.json else format_human(record, args.top_k))


def _classify_index(args, labels, templates, results_file) -> int:
    """Every video of an index, from its stored embeddings."""
    from actionclip.collection import open_index

    idx = open_index(args.index, device=args.device, dtype=None if args.dtype == "auto" else args.dtype)
    if args.frames or args.clips != 1 or args.crops != 1:
        raise UsageError(f"--index: frames, clips and crops are the index's own ({idx.meta['frames']} frames, "
                         f"{idx.meta['clips']} clips, {idx.meta['crops']} crops); drop those options")
    result = idx.classify(labels, templates=templates)
    done = results_file.done(result.key) if results_file else set()
    if done:
        print(f"actionclip: skipping {len(done & set(result.paths))} video(s) already in {args.output}", file=sys.stderr)
    # Only what is shown or written is ranked: with --top-k and no --output, only the top k labels.
    top = None if results_file else args.top_k
    for record in result.records(top_k=top):
        if record["path"] not in done:
            _show(args, record, results_file, print)
    return 0


def _classify_all(args, model, videos, labels, templates, frames, key, results_file) -> int:
    """Run the model over ``videos``; print and record each; return the number that failed."""
    from tqdm import tqdm

    from actionclip.model.scoring import map_features
    from actionclip.pipeline import PrepareViews, encode_videos
    from actionclip.workflows.label_cache import encode_labels

    if not videos:
        return 0
    model_name = str(model.name or args.model) + _precision_tag(model)
    on_gpu = model.on_gpu
    batch_size = args.batch_size or (8 if on_gpu else 1)
    prepare = PrepareViews(model.views, frames, args.clips, args.crops)
    failed = 0
    label_emb = encode_labels(model, labels, templates)  # once per run, cached on disk: [K, L, D]
    bar = tqdm(total=len(videos), unit="video", file=sys.stderr, disable=not sys.stderr.isatty(), leave=False)
    if args.ray:
        if args.backend != "torch":
            raise UsageError("--ray runs the torch backend; drop --backend onnx")
        from actionclip.collection.raydata import encode_videos_ray

        encoded = encode_videos_ray(args.model, videos, prepare, batch_size=args.batch_size,
                                    address=None if args.ray == "local" else args.ray,
                                    dtype=None if args.dtype == "auto" else args.dtype, frames=args.frames)
    else:
        encoded = encode_videos(model, videos, prepare, batch_size=batch_size, workers=args.workers)

    def write(text: str) -> None:
        bar.write(text, file=sys.stdout)
        sys.stdout.flush()

    # closing: an error that ends the run (results file unwritable) stops the decoders at once.
    with bar, contextlib.closing(encoded):
        for batch, features in encoded:
            if isinstance(features, BaseException):
                for video in batch:
                    bar.write(error_line(video.name, features), file=sys.stderr)
                failed += len(batch)
                bar.update(len(batch))
                continue
            if args.ray:  # numpy from the actors, to this model's backend
                features = map_features(features, lambda t, _: model.from_numpy(t))
            rows = model.ops.to_numpy(model.probabilities(features, label_emb))  # [B, L]
            for video, row in zip(batch, rows):
                record = make_record(video.name, video.path, model=model_name, frames=frames, clips=args.clips,
                                     crops=args.crops, labels=labels, probs=row, key=key)
                _show(args, record, results_file, write)
            bar.update(len(batch))
    return failed
