"""How much decode-ahead overlaps: items that each wait (as decoding waits on FFmpeg, without the GIL)
run ``workers`` at a time. Prints the wall time of 8 items of 0.1 s with 0, 1, 2, 4 workers: the
ideal is 0.8 / workers seconds.

    python benchmarks/bench_pipeline.py
"""

from __future__ import annotations

import time

from actionclip.pipeline import prefetch


def main() -> None:
    print("| workers | 8 x 0.1 s items | ideal |")
    print("|---|---|---|")
    for workers in (0, 1, 2, 4):
        start = time.perf_counter()
        list(prefetch(lambda _: time.sleep(0.1), range(8), workers=workers))
        ideal = 0.8 / max(1, workers)
        print(f"| {workers} | {time.perf_counter() - start:.3f} s | {ideal:.3f} s |")


if __name__ == "__main__":
    main()
