"""``actionclip detection-map``: temporal detection mAP of a prediction file, the way papers report it.

ActivityNet (JSON ground truth and predictions, tIoU 0.50:0.05:0.95) or THUMOS14 (the kit's
annotation folder and a detections text file, tIoU 0.3:0.1:0.7); a thin layer over
:func:`actionclip.evaluation.activitynet.evaluate_detection` and
:func:`actionclip.evaluation.thumos14.evaluate_thumos14`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``detection-map`` sub-command."""
    p = subparsers.add_parser(
        "detection-map",
        help="temporal detection mAP of predictions against ground truth (ActivityNet, THUMOS14)",
        description="Score temporal detections as the ActivityNet evaluation (eval_detection.py) or the "
        "THUMOS14 kit does: mAP per tIoU threshold, their average, and AP per class. GROUND_TRUTH is an "
        "ActivityNet JSON file, or a THUMOS14 annotation folder (<Class>_test.txt, Ambiguous_test.txt) "
        "with PREDICTIONS a detections text file. See docs/evaluation.md.",
        epilog="example: actionclip detection-map activity_net.v1-3.min.json predictions.json --json",
    )
    p.add_argument("ground_truth", metavar="GROUND_TRUTH", help="ActivityNet JSON, or a THUMOS14 annotation folder")
    p.add_argument("predictions", metavar="PREDICTIONS", help="ActivityNet results JSON, or THUMOS14 detections text")
    p.add_argument("--format", choices=("auto", "activitynet", "thumos14"), default="auto",
                   help="file formats (default: thumos14 when GROUND_TRUTH is a folder, else activitynet)")
    p.add_argument("--subset", metavar="NAME",
                   help="ActivityNet subset to score (default validation; 'all': every video); THUMOS14: the "
                        "annotation files' suffix, test (default) or val")
    p.add_argument("--tiou", metavar="LIST",
                   help="thresholds, 'a,b,c' or 'start:stop:step' (default 0.5:0.95:0.05, THUMOS14 0.3:0.7:0.1)")
    p.add_argument("--blocked", metavar="FILE",
                   help="ActivityNet: video ids left out of both files (JSON list or one per line)")
    p.add_argument("--classes", metavar="FILE", help="THUMOS14: detclasslist.txt (default: the one in GROUND_TRUTH)")
    p.add_argument("--plot", metavar="PR.png", help="also draw precision-recall curves at the first threshold")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from actionclip.evaluation.detection import parse_tiou
    from actionclip.evaluation.report import detection_table, plot_precision_recall

    if args.plot:
        from actionclip.files import check_writable

        check_writable(args.plot)
    tiou = parse_tiou(args.tiou) if args.tiou else None
    kind = args.format
    if kind == "auto":
        kind = "thumos14" if Path(args.ground_truth).is_dir() else "activitynet"
    curves = bool(args.plot)
    if kind == "thumos14":
        from actionclip.evaluation.thumos14 import evaluate_thumos14

        result = evaluate_thumos14(args.ground_truth, args.predictions, tiou=tiou, classes=args.classes,
                                   subset=args.subset or "test", curves=curves)
    else:
        from actionclip.evaluation.activitynet import evaluate_detection

        result = evaluate_detection(args.ground_truth, args.predictions, tiou=tiou, blocked=args.blocked,
                                    subset={None: "validation", "all": None}.get(args.subset, args.subset),
                                    curves=curves)
    if args.plot:
        plot_precision_recall(result, args.plot)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        print(detection_table(result))
        if args.plot:
            print(f"wrote {args.plot}")
    return 0
