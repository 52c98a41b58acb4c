"""``actionclip timeline``: when does each action happen in a (long) video?

Writes ``PREFIX.windows.csv/.json`` (every window's scores), ``PREFIX.segments.csv/.json`` (the
detected segments) and ``PREFIX.png`` (one lane per label), and prints the segments. With ``--format
activitynet|thumos14 -o FILE`` it runs on every video given and writes all their segments to FILE as
detection results, which ``actionclip detection-map`` scores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from actionclip.cli import options
from actionclip.cli.options import non_negative_float, positive_float


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``timeline`` sub-command."""
    p = subparsers.add_parser(
        "timeline",
        help="find when each action happens in a video (sliding windows, segments, plot)",
        description="Score sliding windows over a video and find the segments where each label happens. "
        "Writes PREFIX.windows.csv/.json, PREFIX.segments.csv/.json and PREFIX.png.",
        epilog="example: actionclip timeline match.mp4 --text 'scoring a goal' --text 'a foul' --stride 0.5",
    )
    p.add_argument("video", metavar="VIDEO", nargs="+", help="video file (with --format: files, folders, globs)")
    options.add_detection(p)
    p.add_argument("--stride", type=positive_float, default=1.0, metavar="SECONDS",
                   help="seconds between window starts (default 1)")
    p.add_argument("--hysteresis", type=non_negative_float, default=0.1, metavar="H",
                   help="a segment lasts while the score stays above threshold - H (default 0.1)")
    p.add_argument("--smooth", type=non_negative_float, metavar="SECONDS",
                   help="moving-average width over window scores (default 3 strides; 0: off)")
    p.add_argument("--min-duration", type=non_negative_float, default=0.0, metavar="S",
                   help="drop segments shorter than S seconds (default 0)")
    p.add_argument("--min-gap", type=non_negative_float, default=0.0, metavar="S",
                   help="join segments of a label separated by less than S seconds (default 0)")
    p.add_argument("--start", type=non_negative_float, metavar="SECONDS", help="start here")
    p.add_argument("--end", type=positive_float, metavar="SECONDS", help="stop here")
    p.add_argument("-o", "--out", metavar="PREFIX", help="output prefix (default: the video's name without extension); "
                   "with --format: the file to write")
    p.add_argument("--no-plot", action="store_true", help="do not write PREFIX.png")
    p.add_argument("--annotate", metavar="OUT.mp4", help="also write the video with the current label drawn on it")
    p.add_argument("--json", action="store_true", help="print the segments (with settings and stats) as JSON")
    p.add_argument("--format", choices=("activitynet", "thumos14"),
                   help="write every video's segments to -o FILE as detection results (video id: the file "
                        "stem; thumos14 class ids: the labels' order), for 'actionclip detection-map'")
    options.add_batch_size(p, default=32, what="frames per image-encoder call")
    p.set_defaults(func=run)


def _fmt_time(seconds: float) -> str:
    m, s = divmod(max(0.0, seconds), 60)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:04.1f}" if h else f"{m}:{s:04.1f}"


def run(args: argparse.Namespace) -> int:
    from actionclip.temporal.timeline import timeline

    if args.format:
        return _run_format(args)
    if len(args.video) > 1:
        from actionclip.errors import UsageError

        raise UsageError("several videos: give --format activitynet|thumos14 and -o FILE (one file for all)")
    args.video = args.video[0]

    if not Path(args.video).is_file():
        from actionclip.errors import VideoError

        raise VideoError(f"{args.video}: no such file")
    from actionclip.files import check_writable

    prefix = args.out or str(Path(args.video).with_suffix(""))
    for target in [Path(prefix + ".windows.csv")] + ([Path(args.annotate)] if args.annotate else []):
        check_writable(target)  # before the (long) scoring, not after it
    labels, templates = options.labels_from(args), options.templates_from(args)  # checked before loading
    model = options.load_model(args)
    progress, bar = None, None
    if sys.stderr.isatty() and not args.json:
        from tqdm import tqdm

        from actionclip.video import probe

        bar = tqdm(total=round(probe(args.video).duration, 1), unit="s", desc="timeline", leave=False)

        def progress(t: float) -> None:
            bar.update(max(0.0, round(t, 1) - bar.n))

    try:
        result = timeline(model, args.video, labels, templates=templates, background=args.background,
                          window=args.window, stride=args.stride, frames=args.frames, threshold=args.threshold,
                          hysteresis=args.hysteresis, smooth=args.smooth, min_duration=args.min_duration,
                          min_gap=args.min_gap, score=args.score, start=args.start, end=args.end,
                          batch_size=args.batch_size, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    paths = result.save(prefix, plot=not args.no_plot)
    if args.annotate:
        from actionclip.temporal.annotate import annotate_video

        paths["annotated"] = annotate_video(args.video, args.annotate, result)
    if args.json:
        doc = result.to_dict(windows=False)
        doc["files"] = {k: str(v) for k, v in paths.items()}
        print(json.dumps(doc, ensure_ascii=False))
        return 0
    st = result.stats
    print(f"{args.video}: {st['duration']:.1f} s, {st['windows']} windows "
          f"(window {result.settings['window']:g} s, stride {result.settings['stride']:g} s, "
          f"T={result.settings['frames']}); {st['frames_encoded']} frames encoded "
          f"(naive {st['naive_frames_encoded']}); {st['realtime_factor']}x real time")
    if not result.segments:
        print(f"  no segments: no label reached {args.threshold:g} ({args.score} score)")
    width = max(len(s.label) for s in result.segments) if result.segments else 0
    for seg in result.segments:
        print(f"  {_fmt_time(seg.start):>9} - {_fmt_time(seg.end):<9} {seg.label:<{width}}  "
              f"mean {seg.mean_score:.2f}  peak {seg.peak_score:.2f} at {_fmt_time(seg.peak_time)}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _run_format(args: argparse.Namespace) -> int:
    """Timelines of every video, written to one detection-results file; a failing video is one line."""
    from actionclip.errors import UsageError
    from actionclip.evaluation.predictions import run_timelines, video_id, write_predictions
    from actionclip.files import check_writable
    from actionclip.video.inputs import InputError, expand_videos

    if not args.out:
        raise UsageError(f"--format {args.format} needs -o FILE (the detection results to write)")
    check_writable(args.out)
    inputs = expand_videos(args.video)
    failed = [f"{i.name}: {i.cause}" for i in inputs if isinstance(i, InputError)]
    videos = [i.path for i in inputs if not isinstance(i, InputError)]
    by_id: dict[str, str] = {}
    for v in videos:
        if video_id(v) in by_id:
            raise UsageError(f"{v}: same video id {video_id(v)!r} as {by_id[video_id(v)]} (ids are file stems)")
        by_id[video_id(v)] = v
    labels = options.labels_from(args)
    model = options.load_model(args) if videos else None

    def on_error(video: str, exc: Exception) -> None:
        failed.append(f"{video}: {exc}" if not str(exc).startswith(video) else str(exc))
        print(f"actionclip: error: {failed[-1]}", file=sys.stderr)

    def on_done(result) -> None:
        if not args.json:
            print(f"{result.video}: {len(result.segments)} segment(s)")

    for line in failed:
        print(f"actionclip: error: {line}", file=sys.stderr)
    results = run_timelines(model, videos, labels, on_error=on_error, on_done=on_done, **options.timeline_options(args))
    path = write_predictions(args.out, results, args.format)
    if args.json:
        print(json.dumps({"file": str(path), "format": args.format, "videos": len(results),
                          "segments": sum(len(r.segments) for r in results), "failed": failed}))
    else:
        print(f"wrote {path} ({args.format}: {len(results)} videos, "
              f"{sum(len(r.segments) for r in results)} segments)")
    return 1 if failed else 0
