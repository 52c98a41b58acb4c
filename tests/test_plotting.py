"""The timeline PNG: opened with Pillow, size and lanes checked pixel by pixel."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from actionclip.errors import UsageError
from actionclip.temporal.plot import plot_timeline
from actionclip.temporal.timeline import TimelineResult, find_segments


def _result(labels, scores, stride=0.5, window=2.0):
    n = scores.shape[0]
    starts = np.arange(n) * stride
    ends = starts + window
    settings = {"score": "independent", "threshold": 0.5, "stride": stride, "window": window}
    segments = find_segments(starts, ends, scores, labels, smooth=1)
    probs = scores / scores.sum(1, keepdims=True)
    return TimelineResult("video.mp4", list(labels), starts, ends, probs, scores, segments, settings,
                          {"duration": float(ends[-1])})


def _rgb(hex_color):
    return np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)])


def _has_color(pixels, color, tol=6):
    return bool((np.abs(pixels[..., :3].astype(int) - color).max(-1) <= tol).any())


def test_png_has_one_lane_per_label_with_its_curve_and_segments(tmp_path):
    n = 80
    scores = np.full((n, 3), 0.1)
    scores[10:30, 0] = 0.9
    scores[40:70, 1] = 0.8
    scores[:, 2] = 0.3 + 0.1 * np.sin(np.arange(n) / 5)  # never detected, still drawn
    result = _result(["running", "jumping", "falling"], scores)
    assert [s.label for s in result.segments] == ["running", "jumping"]
    out = tmp_path / "plots" / "t.png"
    layout = plot_timeline(result, out, dpi=80)

    img = np.asarray(Image.open(out).convert("RGB"))
    assert (img.shape[1], img.shape[0]) == layout.size == (12 * 80, img.shape[0])
    assert img.shape[0] > 3 * 0.8 * 80  # at least the lanes' height
    assert list(layout.lanes) == ["running", "jumping", "falling"]
    tops = [box[1] for box in layout.lanes.values()]
    assert tops == sorted(tops) and len(set(tops)) == 3  # stacked top to bottom, in label order
    for label, (x0, y0, x1, y1) in layout.lanes.items():
        lane = img[y0 + 2 : y1 - 1, x0 + 2 : x1 - 1]
        assert lane.size and (lane < 250).any(), f"lane {label} is blank"
        color = _rgb(layout.colors[label])
        assert _has_color(lane, color), f"lane {label} lacks its curve colour"
        # The segment bar sits at the bottom 12% of the lane, in the label's solid colour.
        bar = lane[-max(2, (y1 - y0) // 10) :]
        assert _has_color(bar, color) == (label != "falling")
    # Segment bars lie where the segments are: left part of running's lane, not its right end.
    x0, y0, x1, y1 = layout.lanes["running"]
    bar_row = img[y1 - 3, x0:x1]
    running = _rgb(layout.colors["running"])
    hits = np.flatnonzero(np.abs(bar_row.astype(int) - running).max(-1) <= 6) / (x1 - x0)
    seg = result.segments[0]
    assert hits.min() == pytest.approx(seg.start / result.duration, abs=0.02)
    assert hits.max() == pytest.approx(seg.end / result.duration, abs=0.02)
    # The best-label strip shows background grey somewhere and running's colour somewhere.
    sx0, sy0, sx1, sy1 = layout.top_strip
    strip = img[sy0 + 2 : sy1 - 1, sx0 + 2 : sx1 - 1]
    assert _has_color(strip, running) and _has_color(strip, _rgb("#bbbbbb"))
    assert [p.name for p in out.parent.iterdir()] == ["t.png"]  # no temporary file left


def test_many_labels_keep_the_detected_ones_and_the_highest(tmp_path):
    labels = [f"label {i}" for i in range(30)]
    scores = np.tile(np.linspace(0.05, 0.4, 30), (40, 1))  # label 29 highest, none detected...
    scores[5:15, 3] = 0.9  # ...except label 3
    layout = plot_timeline(_result(labels, scores), tmp_path / "many.png", max_lanes=5, dpi=50)
    assert list(layout.lanes) == ["label 3", "label 26", "label 27", "label 28", "label 29"]
    assert Image.open(tmp_path / "many.png").size == layout.size


def test_an_unwritable_place_is_one_line_naming_the_png(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the output folder should be")
    result = _result(["a"], np.full((4, 1), 0.9))
    with pytest.raises(UsageError, match=r"taken/t\.png: cannot write"):
        plot_timeline(result, blocker / "t.png")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
