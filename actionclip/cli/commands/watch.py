"""``actionclip watch``: follow a webcam, network stream, file or pipe and print the actions live.

One line (or JSON line with ``--json``) per update; Ctrl-C ends cleanly with a summary on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from actionclip.cli import options
from actionclip.cli.options import positive_float, positive_int


def _option(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``watch`` sub-command."""
    p = subparsers.add_parser(
        "watch",
        help="score a live stream (webcam, RTSP/HTTP/UDP, file at real time, stdin) as it plays",
        description="Keep the last --window seconds of a live source and score the labels every --every "
        "seconds. SOURCE: a webcam index (0) or /dev/videoN, a stream URL (rtsp://, http://, udp://, ...), "
        "a video file (played at real time), or '-' for a stream on stdin.",
        epilog="examples: actionclip watch 0 --text waving --text 'falling down'\n"
        "  ffmpeg -re -i cam.mp4 -f mpegts - | actionclip watch - --text running --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="SOURCE", help="webcam index or device, stream URL, file, or '-'")
    options.add_detection(p)
    p.add_argument("--every", type=positive_float, default=1.0, metavar="SECONDS",
                   help="seconds between updates (default 1)")
    p.add_argument("--top-k", type=positive_int, default=3, metavar="N", help="labels shown per update (default 3)")
    p.add_argument("--json", action="store_true", help="one JSON object per update")
    options.add_verbose(p, also="latency (frame arrival to printed score), reconnects and dropped frames",
                        short=True)
    p.add_argument("--format", metavar="FMT", help="force the FFmpeg demuxer (e.g. mpegts, mjpeg, v4l2)")
    p.add_argument("--option", action="append", type=_option, default=[], metavar="KEY=VALUE",
                   help="demuxer/protocol option, e.g. rtsp_transport=udp or video_size=640x480 (repeat)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", dest="realtime", action="store_true", default=None,
                      help="pace the input to its own speed (default for files)")
    pace.add_argument("--no-realtime", dest="realtime", action="store_false", help="read as fast as possible")
    p.add_argument("--no-reconnect", action="store_true", help="end when a network stream or device drops")
    p.add_argument("--max-retries", type=int, default=10, metavar="N",
                   help="consecutive failed reconnection attempts before giving up (default 10)")
    p.add_argument("--backoff", type=positive_float, default=0.5, metavar="SECONDS",
                   help="first wait before reconnecting; doubles per failure up to 10 s (default 0.5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from actionclip.temporal.live import LiveSummary, watch
    from actionclip.video.stream import parse_source

    source = parse_source(args.source, format=args.format, options=dict(args.option))  # checks before loading
    if source.kind == "file" and not source.format:
        from actionclip.video import probe

        probe(source.target)  # a file that is no video is its one error line, before any "watching"
    labels, templates = options.labels_from(args), options.templates_from(args)  # checked before loading
    model = options.load_model(args)
    summary = LiveSummary(labels)
    updates = watch(model, source, labels, templates=templates, background=args.background, window=args.window,
                    frames=args.frames, every=args.every, score=args.score, threshold=args.threshold,
                    top_k=args.top_k, realtime=args.realtime, reconnect=False if args.no_reconnect else None,
                    max_retries=args.max_retries, backoff=args.backoff)
    if not args.json:
        print(f"watching {source.name} ({args.score} score, threshold {args.threshold:g}); Ctrl-C to stop",
              file=sys.stderr, flush=True)
    try:
        for update in updates:
            line = json.dumps(update.to_dict(), ensure_ascii=False) if args.json else update.format_line()
            # Counted before printing, so a Ctrl-C between the two never loses a shown update.
            latency = time.monotonic() - update.arrival  # arrival -> printed, what a viewer waits
            summary.add(update, latency)
            print(line, flush=True)
            if args.verbose and not args.json:
                print(f"    latency {latency * 1000:.0f} ms, window {update.frames} frames over {update.span:.1f} s, "
                      f"{update.reconnects} reconnects, {update.dropped} dropped", flush=True)
    except KeyboardInterrupt:
        pass  # a clean stop: the summary below is the point
    finally:
        updates.close()
    if args.json:
        print(json.dumps({"summary": summary.to_dict()}), file=sys.stderr, flush=True)
    else:
        print(summary.format(), file=sys.stderr, flush=True)
    return 0
