"""``actionclip eval-timeline``: how well do timelines find the actions of an annotated set?

Videos plus their ground truth (ActivityNet JSON, or a THUMOS14 annotation folder) -> a timeline of
every video over the ground truth's classes -> detection results -> mAP, a per-class table and a
precision-recall plot, all written to one folder. A thin layer over
:mod:`actionclip.evaluation.predictions` and the two protocols.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from actionclip.cli import options
from actionclip.cli.options import non_negative_float, positive_float

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval-timeline`` sub-command."""
    p = subparsers.add_parser(
        "eval-timeline",
        help="run timelines on an annotated set and score them (detection mAP, per class, PR plot)",
        description="Run 'timeline' on every video, over the classes of the ground truth, and score the "
        "segments with the ActivityNet or THUMOS14 protocol. Videos are matched to the ground truth by "
        "file name (ActivityNet's 'v_' prefix may be present). Only the videos given are scored. Writes "
        "OUT/predictions.json (or .txt), OUT/report.json, OUT/report.txt and OUT/pr.png.",
        epilog="example: actionclip eval-timeline videos/ --ground-truth gt.json -o eval --stride 0.5",
    )
    p.add_argument("videos", metavar="VIDEO", nargs="+", help="video files, folders or glob patterns")
    p.add_argument("--ground-truth", required=True, metavar="FILE|DIR",
                   help="ActivityNet ground-truth JSON, or a THUMOS14 annotation folder")
    p.add_argument("--subset", default="validation", metavar="NAME",
                   help="ActivityNet subset (default validation; 'all': every video); THUMOS14 uses 'test'")
    p.add_argument("--tiou", metavar="LIST", help="thresholds, 'a,b,c' or 'start:stop:step' (default: the protocol's)")
    p.add_argument("-o", "--out", default="eval-timeline", metavar="DIR", help="output folder (default eval-timeline)")
    options.add_model(p)
    p.add_argument("--window", type=positive_float, default=4.0, metavar="SECONDS",
                   help="seconds covered by one window's T frames (default 4)")
    options.add_frames(p)
    p.add_argument("--score", choices=("independent", "softmax"), default="independent",
                   help="decision score (default independent)")
    p.add_argument("--threshold", type=options.probability, default=0.5, metavar="P",
                   help="a label is detected when its decision score reaches P (default 0.5)")
    p.add_argument("--background", action="append", metavar="TEXT", help="a background prompt (repeat)")
    p.add_argument("--stride", type=positive_float, default=1.0, metavar="SECONDS",
                   help="seconds between window starts (default 1)")
    p.add_argument("--hysteresis", type=non_negative_float, default=0.1, metavar="H", help="(default 0.1)")
    p.add_argument("--smooth", type=non_negative_float, metavar="SECONDS", help="(default 3 strides; 0: off)")
    p.add_argument("--min-duration", type=non_negative_float, default=0.0, metavar="S")
    p.add_argument("--min-gap", type=non_negative_float, default=0.0, metavar="S")
    options.add_templates(p)
    options.add_runtime(p)
    options.add_batch_size(p, default=32, what="frames per image-encoder call")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=run)


def _ground_truth(args: argparse.Namespace) -> tuple[str, set[str], list[str]]:
    """(protocol, the ground truth's video ids, its class names)."""
    gt = Path(args.ground_truth)
    if gt.is_dir():
        from actionclip.evaluation.thumos14 import AMBIGUOUS, read_class_list, read_ground_truth

        classes = read_class_list(gt / "detclasslist.txt")
        inst = read_ground_truth(gt, classes)
        return "thumos14", {v for v, l in zip(inst.videos, inst.labels) if l != AMBIGUOUS}, list(classes.values())
    from actionclip.evaluation.activitynet import read_ground_truth

    _, facts = read_ground_truth(gt, None if args.subset == "all" else args.subset)
    return "activitynet", set(facts["videos"]), []


def run(args: argparse.Namespace) -> int:
    from actionclip.evaluation.detection import parse_tiou
    from actionclip.evaluation.predictions import match_video_ids, run_timelines, write_predictions
    from actionclip.evaluation.report import detection_table, plot_precision_recall, save_json
    from actionclip.files import check_writable
    from actionclip.video.inputs import InputError, expand_videos

    out = Path(args.out)
    check_writable(out / "report.json")
    tiou = parse_tiou(args.tiou) if args.tiou else None
    protocol, known, classes = _ground_truth(args)
    inputs = expand_videos(args.videos)
    failed = [f"{i.name}: {i.cause}" for i in inputs if isinstance(i, InputError)]
    paths = [i.path for i in inputs if not isinstance(i, InputError)]
    ids, unmatched = match_video_ids(paths, known)
    failed += [f"{p}: {cause} ({args.ground_truth})" for p, cause in unmatched]
    for line in failed:
        print(f"actionclip: error: {line}", file=sys.stderr)
    if not ids:
        if failed:  # each video's cause is said already; a summary line would be a second error
            return 1
        from actionclip.errors import UsageError

        raise UsageError(f"{args.ground_truth}: none of the videos given is in the ground truth")
    if protocol == "activitynet":
        from actionclip.evaluation.activitynet import read_ground_truth

        inst, _ = read_ground_truth(args.ground_truth, None if args.subset == "all" else args.subset,
                                    videos=set(ids.values()))
        classes = list(dict.fromkeys(inst.labels))
    model = options.load_model(args)

    def on_error(video: str, exc: Exception) -> None:
        failed.append(str(exc) if str(exc).startswith(video) else f"{video}: {exc}")
        print(f"actionclip: error: {failed[-1]}", file=sys.stderr)

    results = run_timelines(model, list(ids), classes, on_error=on_error, **options.timeline_options(args))
    done = {ids[str(r.video)] for r in results if str(r.video) in ids}
    if not done:  # every video failed, each said so in its own line: nothing to score, nothing written
        return 1
    pred_path = out / ("predictions.json" if protocol == "activitynet" else "predictions.txt")
    if protocol == "thumos14":
        from actionclip.evaluation.thumos14 import evaluate_thumos14, read_class_list

        class_ids = {name: cid for cid, name in read_class_list(Path(args.ground_truth) / "detclasslist.txt").items()}
        write_predictions(pred_path, results, protocol, ids=ids, class_ids=class_ids)
        result = evaluate_thumos14(args.ground_truth, pred_path, tiou=tiou, videos=done, curves=True)
    else:
        from actionclip.evaluation.activitynet import evaluate_detection

        write_predictions(pred_path, results, protocol, ids=ids)
        result = evaluate_detection(args.ground_truth, pred_path, tiou=tiou, videos=done, curves=True,
                                    subset=None if args.subset == "all" else args.subset)
    doc = result.to_dict()
    doc["videos"] = sorted(done)
    doc["failed"] = failed
    doc["settings"] = {k: v for k, v in options.timeline_options(args).items() if k != "templates"}
    doc["model"] = args.model
    doc["files"] = {"predictions": str(pred_path), "report": str(out / "report.json"),
                    "table": str(out / "report.txt"), "plot": str(out / "pr.png")}
    save_json(out / "report.json", doc)
    from actionclip.files import write_text

    table = detection_table(result)
    write_text(out / "report.txt", table + "\n")
    plot_precision_recall(result, out / "pr.png")
    if args.json:
        print(json.dumps(doc, ensure_ascii=False))
    else:
        print(f"{len(done)} videos scored ({protocol})")
        print(table)
        print(f"wrote {pred_path}, {out / 'report.json'}, {out / 'report.txt'}, {out / 'pr.png'}")
    return 1 if failed else 0
