"""Re-create examples/arm_wrestling.mp4 from mmaction2's demo clip (Apache-2.0).

The original is ``demo/demo.mp4`` of github.com/open-mmlab/mmaction2 (340x256, 28 fps, 10 s, 636 kB);
mmaction2's demo README reports "arm wrestling" as its Kinetics-400 label. This script re-encodes it
with x264 at a lower quality so that the repository stays small; the content is unchanged.

    python examples/make_sample.py path/to/mmaction2/demo/demo.mp4
"""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np

from actionclip.video.write import write_video


def main(source: str, target: str = str(Path(__file__).with_name("arm_wrestling.mp4"))) -> None:
    with av.open(source) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
    write_video(target, frames, fps=fps, codec="libx264", options={"crf": "30", "preset": "slow"})
    print(f"{target}: {len(frames)} frames, {Path(target).stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main(*sys.argv[1:])
