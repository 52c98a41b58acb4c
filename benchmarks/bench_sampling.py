"""Frame sampling cost: 8 frames from a 10-second vs a 10-minute 720p H.264 video, and decode-all.

Goal (issue 6): sampling from the long video costs at most 3x the short one, and is at least 20x
faster than decoding the whole long video.

The videos are generated once into a cache folder (default: the system temp dir) by
:func:`actionclip._dev.videos.make_long_video`: 720p, 25 fps, one keyframe every ``--gop`` seconds
(real files have 2-10 s), low-complexity content so that generating 10 minutes takes seconds.
Each timing is the best of ``--repeat`` runs (the machine may be shared); the sampled frames are
checked against the frame numbers they show.

    python benchmarks/bench_sampling.py [--gop 5] [--repeat 3] [--cache DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from actionclip._dev.videos import frame_index_from_pixels, make_long_video
from actionclip.video import probe, read_video, sample_indices


def _video(cache: Path, seconds: int, gop: float) -> Path:
    path = cache / f"bench_720p_{seconds}s_gop{gop:g}.mp4"
    if not path.exists():
        t = time.perf_counter()
        make_long_video(path, seconds, size=(1280, 720), fps=25, gop_seconds=gop)
        print(f"generated {path.name} in {time.perf_counter() - t:.1f} s")
    return path


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _decode_all(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # the same decoder settings as actionclip.video
        return sum(1 for _ in container.decode(stream))


def _check(path: Path, gop_frames: int) -> None:
    info = probe(path)
    frames = read_video(path, 8)[0]
    want = [i % gop_frames for i in sample_indices(info.num_frames, 8)]
    got = [frame_index_from_pixels(f) for f in frames]
    if got != want:
        raise SystemExit(f"{path.name}: sampled frames show {got}, expected {want}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gop", type=float, default=5.0, help="keyframe interval, seconds")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "actionclip-bench")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    short, long = _video(args.cache, 10, args.gop), _video(args.cache, 600, args.gop)
    for path in (short, long):
        _check(path, round(args.gop * 25))

    t_short = _best(lambda: read_video(short, 8), args.repeat)
    t_long = _best(lambda: read_video(long, 8), args.repeat)
    n = 0

    def decode_all() -> None:
        nonlocal n
        n = _decode_all(long)

    t_all = _best(decode_all, 1)
    print(f"keyframe every {args.gop:g} s, 1280x720 H.264, best of {args.repeat}")
    print(f"sample 8 frames (center), 10 s video : {t_short:.3f} s")
    print(f"sample 8 frames (center), 10 min video: {t_long:.3f} s")
    print(f"decode all {n} frames of the 10 min video: {t_all:.2f} s")
    print(f"long / short  = {t_long / t_short:.2f}x   (goal <= 3x)")
    print(f"decode-all / long sampling = {t_all / t_long:.1f}x   (goal >= 20x)")


if __name__ == "__main__":
    main()
