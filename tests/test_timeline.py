"""Timelines: sampling plan, frame-embedding cache, segments; end to end on a generated video."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from timeline_support import LABELS, colour_video

from actionclip.errors import UsageError
from actionclip.temporal.frames import FrameEncoder, iter_windows
from actionclip.temporal.plan import plan_sampling
from actionclip.temporal.segments import find_segments, hysteresis_runs, merge_runs, smooth_scores, top_labels

# ---------------------------------------------------------------------------------------------------
# Sampling plan and the frame-embedding cache (no model needed)
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "window, stride, frames, grid, per_stride, step",
    [
        (4.0, 1.0, 8, 0.5, 2, 1),  # the default: 2 new frames per stride, 6 shared
        (1.0, 1.0, 8, 0.125, 8, 1),  # windows just touch
        (8.0, 0.5, 4, 0.5, 1, 4),  # stride finer than the frame spacing
        (1.0, 3.0, 4, 0.25, 12, 1),  # gaps between windows
        (3.0, 1.0, 8, 1 / 3, 3, 1),  # spacing 0.375 snapped to 1/3 so the stride is 3 steps
    ],
)
def test_plan_puts_every_window_on_one_grid(window, stride, frames, grid, per_stride, step):
    plan = plan_sampling(window, stride, frames)
    assert (plan.grid, plan.per_stride, plan.step) == (pytest.approx(grid), per_stride, step)
    assert plan.per_stride * plan.grid == pytest.approx(stride)  # window starts are exact
    assert plan.effective_window == pytest.approx(window, rel=0.2)
    assert plan.window_indices(2)[0] * plan.grid == pytest.approx(2 * stride)


def test_plan_rejects_nonsense_naming_the_parameter_not_a_flag():
    for args, name in [((0, 1, 8), "window"), ((4, 0, 8), "stride"), ((4, 1, 0), "frames"),
                       ((float("nan"), 1, 8), "window")]:
        with pytest.raises(UsageError) as err:
            plan_sampling(*args)
        assert str(err.value).startswith(f"{name} ") and "--" not in str(err.value)


def test_library_errors_name_parameters(arranged_model, segments_video):
    """Called from Python there are no flags: the errors say `score`, `threshold`, not `--score`."""
    from actionclip.temporal.live import watch
    from actionclip.temporal.timeline import timeline

    model, path = arranged_model[0], segments_video[0]
    for kwargs, name in [({"score": "best"}, "score"), ({"threshold": 2.0}, "threshold"),
                         ({"min_gap": -1.0}, "min_gap"), ({"window": -1.0}, "window")]:
        with pytest.raises(UsageError) as err:
            timeline(model, path, LABELS, **kwargs)
        assert name in str(err.value) and "--" not in str(err.value)
    with pytest.raises(UsageError) as err:
        next(watch(model, str(path), LABELS, every=0))
    assert "every" in str(err.value) and "--" not in str(err.value)


class _CountingEncoder(FrameEncoder):
    """Stands in for the model: a frame's 'embedding' is its grid index, so windows can be checked."""

    def __init__(self, batch_size=5):
        self.batch_size = batch_size
        self.frames_encoded = 0
        self.encoder_calls = 0
        self.seen: list[int] = []

    def preprocess(self, frame):
        return torch.tensor([float(frame[0, 0, 0])])

    def stack(self, units):
        return torch.stack(units)

    def encode(self, pixels):
        self.frames_encoded += len(pixels)
        self.encoder_calls += 1
        self.seen += [int(p[0]) for p in pixels]
        return torch.stack(pixels)


def _grid_frames(n, grid):
    for i in range(n):
        yield i * grid, np.full((2, 2, 3), i, dtype=np.uint8)


@pytest.mark.parametrize("window, stride, frames", [(4.0, 1.0, 8), (8.0, 0.5, 4), (1.0, 3.0, 4)])
def test_each_needed_frame_is_encoded_once_and_windows_hold_the_right_frames(window, stride, frames):
    plan = plan_sampling(window, stride, frames)
    n = 60
    enc = _CountingEncoder()
    windows = list(iter_windows(_grid_frames(n, plan.grid), plan, enc))
    expected_windows = [i for i in range(n) if plan.window_indices(i)[-1] < n]
    assert len(windows) == len(expected_windows) > 1
    for i, (start, end, emb) in enumerate(windows):
        idx = plan.window_indices(i)
        assert emb[:, 0].tolist() == idx
        assert start == pytest.approx(idx[0] * plan.grid)
        assert end == pytest.approx(idx[-1] * plan.grid)
    needed = [k for k in range(n) if plan.needed(k)]
    assert enc.seen == needed  # each needed frame once, in order
    if plan.per_stride < plan.span:  # overlapping windows: far fewer than the naive T per window
        assert enc.frames_encoded < len(windows) * frames / 2
    used = sorted({k for i in range(len(windows)) for k in plan.window_indices(i)})
    assert set(used) <= set(needed) and len(needed) - len(used) < plan.span  # nothing wasted but the tail


def test_a_video_shorter_than_one_window_gives_one_window_of_repeated_frames():
    plan = plan_sampling(4.0, 1.0, 8)
    enc = _CountingEncoder()
    (start, end, emb), = list(iter_windows(_grid_frames(3, plan.grid), plan, enc))
    assert emb[:, 0].tolist() == [0, 0, 1, 1, 1, 1, 2, 2]
    assert (start, end) == (0.0, pytest.approx(1.0))
    assert list(iter_windows(iter(()), plan, enc)) == []


# ---------------------------------------------------------------------------------------------------
# Segments from synthetic score arrays
# ---------------------------------------------------------------------------------------------------


def test_smoothing_keeps_constants_and_edges_in_place():
    x = np.r_[np.zeros(10), np.ones(10)][:, None]
    for width in (1, 3, 4, 5):
        y = smooth_scores(x, width)
        assert y.shape == x.shape
        # symmetric filter: the 0.5 crossing stays between samples 9 and 10
        assert y[9, 0] <= 0.5 <= y[10, 0]
        assert y[0, 0] == 0 and y[-1, 0] == 1
    spike = np.zeros(9)
    spike[4] = 0.9
    assert smooth_scores(spike, 3).max() == pytest.approx(0.3)


def test_hysteresis_enters_high_and_leaves_low():
    x = [0.2, 0.45, 0.6, 0.45, 0.42, 0.3, 0.55, 0.45, 0.3, 0.45, 0.45]
    assert hysteresis_runs(x, 0.5, 0.4) == [(1, 4), (6, 7)]  # the last run never reaches 0.5
    assert hysteresis_runs(x, 0.5, 0.5) == [(2, 2), (6, 6)]
    with pytest.raises(ValueError):
        hysteresis_runs(x, 0.4, 0.5)


def test_merge_runs_joins_short_gaps_only():
    assert merge_runs([(0, 1), (1.4, 2), (4, 5)], 0.5) == [(0, 2), (4, 5)]
    assert merge_runs([(0, 1), (1.4, 2)], 0.0) == [(0, 1), (1.4, 2)]


def _windows(n, stride=1.0, window=2.0):
    starts = np.arange(n) * stride
    return starts, starts + window


def test_find_segments_places_edges_between_window_centres():
    starts, ends = _windows(20)  # centres at 1, 2, ..., 20
    scores = np.zeros((20, 2))
    scores[5:12, 0] = 0.9  # windows 5..11: label a
    scores[14:20, 1] = 0.8  # label b runs to the end
    segs = find_segments(starts, ends, scores, ["a", "b"], smooth=1, duration=22.5)
    assert [(s.label, s.start, s.end) for s in segs] == [("a", 5.5, 12.5), ("b", 14.5, 22.5)]
    a = segs[0]
    assert a.windows == 7 and a.mean_score == pytest.approx(0.9) and a.peak_score == pytest.approx(0.9)
    assert a.duration == pytest.approx(7.0) and 6 <= a.peak_time <= 12


def test_find_segments_min_duration_and_min_gap_and_background():
    starts, ends = _windows(30)
    scores = np.full((30, 1), 0.1)
    scores[3:5, 0] = 0.9  # 2 s blip
    scores[10:15, 0] = 0.9
    scores[16:20, 0] = 0.9  # 1-window gap
    labels = ["a"]
    segs = find_segments(starts, ends, scores, labels, smooth=1)
    assert [(s.start, s.end) for s in segs] == [(3.5, 5.5), (10.5, 15.5), (16.5, 20.5)]
    segs = find_segments(starts, ends, scores, labels, smooth=1, min_duration=3.0, min_gap=1.5)
    assert [(s.start, s.end) for s in segs] == [(10.5, 20.5)]
    assert segs[0].windows == 10  # the gap window is inside the merged segment
    assert segs[0].mean_score == pytest.approx((9 * 0.9 + 0.1) / 10)
    # nothing matches -> no segment, and every window is background
    assert find_segments(starts, ends, np.full((30, 1), 0.3), labels) == []
    assert {t for t, _ in top_labels(np.full((30, 1), 0.3), labels, 0.5)} == {None}
    assert top_labels(np.array([[0.2, 0.7], [0.6, 0.1]]), ["x", "y"], 0.5) == [("y", 0.7), ("x", 0.6)]


def test_smoothing_removes_a_one_window_spike():
    starts, ends = _windows(15)
    scores = np.full((15, 1), 0.2)
    scores[7, 0] = 0.95
    assert len(find_segments(starts, ends, scores, ["a"], smooth=1)) == 1
    assert find_segments(starts, ends, scores, ["a"], smooth=3) == []


# ---------------------------------------------------------------------------------------------------
# End to end on a generated video, with a tiny model whose embeddings are arranged
# ---------------------------------------------------------------------------------------------------
# The arranged model and the colour videos are described in tests/timeline_support.py.

SEGMENTS = [("red", 3.1), ("green", 3.1), ("grey", 3.1), ("blue", 3.2)]  # cuts at 3.1, 6.2, 9.3 s


@pytest.fixture(scope="module")
def segments_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "segments.mp4"
    cuts = colour_video(path, SEGMENTS)
    return path, cuts


def test_detected_segments_lie_within_one_stride_of_the_true_cuts(arranged, segments_video):
    from actionclip.temporal.timeline import timeline

    model, calls = arranged
    path, cuts = segments_video
    stride = 0.25
    result = timeline(model, path, LABELS, window=1.0, stride=stride, frames=4)
    truth = [("juggling", 0.0, cuts[0]), ("swimming", cuts[0], cuts[1]), ("dancing", cuts[2], 12.6)]
    got = [(s.label, s.start, s.end) for s in result.segments]
    assert [g[0] for g in got] == [t[0] for t in truth], got
    for (label, start, end), (_, t_start, t_end) in zip(got, truth):
        assert abs(start - t_start) <= stride and abs(end - t_end) <= stride, (label, start, end)
    # The grey stretch is background: no window fully inside it has a label.
    for w in result.windows:
        if w.start >= cuts[1] + 0.01 and w.end <= cuts[2] - 0.01:
            assert w.top is None and max(w.scores.values()) < 0.01
        if w.end <= cuts[0]:
            assert w.top == "juggling" and w.scores["juggling"] > 0.99
    # Frame-embedding reuse: one encoder pass per sampled frame, not T per window.
    frames_sampled = len(list(__import__("actionclip.video", fromlist=["iter_frames"]).iter_frames(path, fps=4.0)))
    assert calls["images"] == result.stats["frames_encoded"] == frames_sampled
    assert result.stats["naive_frames_encoded"] == 4 * len(result.windows) > 3 * calls["images"]
    assert calls["calls"] == -(-frames_sampled // 32)  # batched
    assert result.stats["duration"] == pytest.approx(12.5, abs=0.3)


def test_one_label_alone_is_detected_only_where_it_happens(arranged, segments_video):
    """The softmax over a single label is 1 everywhere; the independent score is not."""
    from actionclip.temporal.timeline import timeline

    model, _ = arranged
    path, cuts = segments_video
    result = timeline(model, path, ["swimming"], window=1.0, stride=0.5, frames=4)
    assert np.allclose(result.probs, 1.0)
    (seg,) = result.segments
    assert abs(seg.start - cuts[0]) <= 0.5 and abs(seg.end - cuts[1]) <= 0.5
    forced = timeline(model, path, ["swimming"], window=1.0, stride=0.5, frames=4, score="softmax")
    assert [(s.start, s.end) for s in forced.segments] == [(0.0, pytest.approx(forced.duration))]


def test_cached_windows_equal_encoding_each_window_from_scratch(tmp_path):
    """With a real Transf fusion head, the cached path gives the same scores as the naive one."""
    import actionclip
    from actionclip._dev.weights import write_checkpoint
    from actionclip.temporal.timeline import timeline
    from actionclip.video import iter_frames
    from actionclip.video.preprocess import preprocess_frames

    model = actionclip.load(write_checkpoint(tmp_path / "transf.pt", fusion="Transf", frames=4), dtype="fp32")
    path = tmp_path / "v.mp4"
    colour_video(path, [("red", 1.0), ("green", 1.5)])
    labels = ["juggling", "swimming", "dancing"]
    result = timeline(model, path, labels, window=1.0, stride=0.25, frames=4, batch_size=3, window_batch=2)
    grid = [f for _, f in iter_frames(path, fps=4.0)]
    label_emb = model.encode_labels(labels)
    with torch.inference_mode():
        for i in range(len(result.starts)):
            pixels = preprocess_frames(torch.from_numpy(np.stack(grid[i : i + 4])), model.config.preprocessing)
            video = model.encode_video(pixels[None])
            torch.testing.assert_close(torch.from_numpy(result.probs[i]), model.probabilities(video, label_emb)[0],
                                       atol=2e-5, rtol=1e-4)
    assert len(result.starts) == len(grid) - 3


@pytest.fixture(scope="module")
def segments_timeline(arranged_model, segments_video):
    """The timeline of the segments video (1 s windows, 0.5 s stride, 4 frames), for tests that only read it."""
    from actionclip.temporal.timeline import timeline

    return timeline(arranged_model[0], segments_video[0], LABELS, window=1.0, stride=0.5, frames=4)


def test_save_writes_all_files_and_they_agree(segments_timeline, tmp_path):
    import csv
    import json

    result = segments_timeline
    paths = result.save(tmp_path / "out" / "seg")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "seg.png", "seg.segments.csv", "seg.segments.json", "seg.windows.csv", "seg.windows.json"]
    windows = json.loads(paths["windows_json"].read_text())
    rows = list(csv.DictReader(paths["windows_csv"].open()))
    assert len(rows) == len(windows["windows"]) == len(result.starts)
    assert float(rows[3]["start"]) == pytest.approx(windows["windows"][3]["start"], abs=1e-3)
    assert rows[0]["top"] == "juggling" and float(rows[0]["score:juggling"]) > 0.99
    assert sum(float(rows[0][f"prob:{l}"]) for l in LABELS) == pytest.approx(1.0, abs=1e-4)
    segs = json.loads(paths["segments_json"].read_text())["segments"]
    seg_rows = list(csv.DictReader(paths["segments_csv"].open()))
    assert [s["label"] for s in segs] == [r["label"] for r in seg_rows] == ["juggling", "swimming", "dancing"]
    assert json.loads(result.to_json())["stats"]["frames_encoded"] == result.stats["frames_encoded"]


def test_save_to_an_unwritable_place_is_one_line_naming_the_file(segments_timeline, tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the output folder should be")
    with pytest.raises(UsageError, match=r"taken/seg\.windows\.csv: cannot write"):
        segments_timeline.save(blocker / "seg", plot=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no temporary file left behind


def test_annotated_video_shows_the_label(segments_timeline, segments_video, tmp_path):
    import av

    from actionclip.temporal.annotate import Labeller, annotate_video
    from actionclip.video import iter_frames, probe

    path, _ = segments_video
    result = segments_timeline
    out = annotate_video(path, tmp_path / "annotated.mp4", result)
    src_info, out_info = probe(path), probe(out)
    assert (out_info.width, out_info.height) == (src_info.width, src_info.height)
    assert abs(out_info.num_frames - src_info.num_frames) <= 1
    src = dict(iter_frames(path))
    changed_box, untouched = [], []
    for t, frame in iter_frames(out):
        ref = src[min(src, key=lambda s: abs(s - t))].astype(int)
        diff = np.abs(frame.astype(int) - ref)
        changed_box.append(diff[:12, :30].mean())
        untouched.append(diff[-12:, -20:].mean())
    assert min(changed_box) > 20  # the text box is on every frame
    assert max(untouched) < 12  # the rest is the video (lossy codec noise only)
    label_at = Labeller(result)
    assert label_at(1.0)[0] == "juggling" and label_at(7.5)[0] is None and label_at(11.0)[0] == "dancing"
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"


def test_cli_timeline_writes_outputs_and_reports_errors(tiny_or_meanp, tmp_path, capsys, segments_video):
    import json

    from actionclip.cli import main

    path, _ = segments_video
    prefix = tmp_path / "cli"
    code = main(["timeline", str(path), "--model", str(tiny_or_meanp), "--text", "juggling", "--text", "swimming",
                 "--window", "1", "--stride", "0.5", "--frames", "4", "--out", str(prefix), "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["labels"] == ["juggling", "swimming"] and doc["stats"]["windows"] > 10
    assert set(doc["files"]) == {"windows_csv", "windows_json", "segments_csv", "segments_json", "png"}
    assert all((tmp_path / f"cli{suffix}").is_file() for suffix in
               (".windows.csv", ".windows.json", ".segments.csv", ".segments.json", ".png"))
    assert main(["timeline", str(path), "--model", str(tiny_or_meanp), "--text", "a", "--out", str(prefix),
                 "--stride", "1", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "windows" in out and "naive" in out
    assert main(["timeline", str(tmp_path / "missing.mp4"), "--model", str(tiny_or_meanp), "--text", "a"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.mp4" in err[0]
    assert main(["timeline", str(path), "--model", str(tiny_or_meanp), "--text", "a", "--text", "a"]) == 1
    assert "duplicate" in capsys.readouterr().err
    (tmp_path / "taken").write_text("a file where the output folder should be")
    for bad in (["--out", str(tmp_path / "taken" / "x")], ["--annotate", str(tmp_path / "taken" / "x.mp4")]):
        assert main(["timeline", str(path), "--model", str(tiny_or_meanp), "--text", "a", *bad]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "taken/x" in err[0] and "cannot write" in err[0]


@pytest.fixture
def tiny_or_meanp(meanp_checkpoint):
    return meanp_checkpoint
