"""``actionclip eval-retrieval``: text-video retrieval recall of an index on a captions file.

MSR-VTT style: ``video_id,sentence`` rows, video ids matched to the index's files by name. Reports
text->video and video->text R@1, R@5, R@10, median and mean rank with CLIP4Clip's formula; a thin
layer over :func:`actionclip.evaluation.retrieval.evaluate_retrieval`.
"""

from __future__ import annotations

import argparse
import json

from actionclip.cli import options

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval-retrieval`` sub-command."""
    p = subparsers.add_parser(
        "eval-retrieval",
        help="text-video retrieval recall of an index on captions (R@1/5/10, median and mean rank)",
        description="Score every indexed video against every caption with the index's model and report "
        "text->video and video->text R@1, R@5, R@10, median and mean rank as CLIP4Clip computes them. "
        "CAPTIONS is a CSV with 'video_id' and 'sentence' columns (MSR-VTT's MSRVTT_JSFUSION_test.csv "
        "works as is); the candidates are the videos it names. One caption per video: the 1k-A "
        "protocol; several: the multi-caption one. See docs/evaluation.md.",
        epilog="example: actionclip eval-retrieval msrvtt.index MSRVTT_JSFUSION_test.csv",
    )
    p.add_argument("index", metavar="INDEX", help="an index folder built by 'actionclip index'")
    p.add_argument("captions", metavar="CAPTIONS", help="CSV with video_id and sentence columns")
    options.add_templates(p)  # default here: each sentence as written (template "{}"), as papers embed captions
    options.add_runtime(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from actionclip.evaluation.report import retrieval_table
    from actionclip.evaluation.retrieval import evaluate_retrieval

    result = evaluate_retrieval(args.index, args.captions, templates=options.templates_from(args),
                                device=args.device, dtype=None if args.dtype == "auto" else args.dtype)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(f"{result['captions']} captions, {result['videos']} videos ({result['protocol']})")
    print(retrieval_table({k: result[k] for k in ("text_to_video", "video_to_text")}))
    return 0
