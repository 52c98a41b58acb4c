"""``actionclip index / search / classify --index`` and the Python API behind them.

Checked against independent computations: ``classify --index`` against plain ``classify`` on the
files, search scores against cosines computed here from the model's own encoders, incremental and
resumable runs against what a subprocess killed with SIGKILL left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lancedb")

import actionclip  # noqa: E402
from actionclip.cli import main  # noqa: E402
from cli_support import REPO_ROOT, ckpt, error_lines, json_lines, make_video  # noqa: E402,F401
from index_support import ToyModel  # noqa: E402

LABELS = ["running", "walking", "playing guitar"]


def _text_args(labels=LABELS) -> list[str]:
    return [arg for label in labels for arg in ("--text", label)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    make_video(root / "a.mp4", seconds=1.0)
    make_video(root / "b.mp4", seconds=2.0, size=(48, 64))
    make_video(root / "sub" / "c.mkv", seconds=1.5)
    return root


@pytest.fixture(scope="module")
def built(folder, tiny_checkpoint, tmp_path_factory) -> Path:
    """An index of ``folder`` with moments (1 s windows every 0.5 s), in fp32."""
    out = tmp_path_factory.mktemp("built") / "videos.index"
    code = main(["index", str(folder), "--out", str(out), "--model", str(tiny_checkpoint), "--dtype", "fp32",
                 "--window", "1", "--stride", "0.5"])
    assert code == 0
    return out


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "videos"
    shutil.copytree(folder, target)
    return target


# ----------------------------------------------------------------------------------------------
# The three commands


def test_classify_index_gives_the_records_of_plain_classify(built, folder, ckpt, capsys):
    capsys.readouterr()
    assert main(["classify", "--index", str(built), *_text_args(), "--json"]) == 0
    from_index = {r["video"]: r for r in json_lines(capsys.readouterr().out)}
    assert main(["classify", str(folder), *_text_args(), "--model", str(ckpt), "--dtype", "fp32", "--json"]) == 0
    from_files = {r["video"]: r for r in json_lines(capsys.readouterr().out)}
    assert sorted(from_index) == sorted(from_files) and len(from_files) == 3
    for video, record in from_files.items():
        mine = from_index[video]
        assert {k: mine[k] for k in ("model", "frames", "clips", "crops")} == \
            {k: record[k] for k in ("model", "frames", "clips", "crops")}
        assert [r["label"] for r in mine["results"]] == [r["label"] for r in record["results"]]
        np.testing.assert_allclose([r["prob"] for r in mine["results"]], [r["prob"] for r in record["results"]],
                                   atol=1e-5)


def test_classify_index_output_file_resumes_like_plain_classify(built, tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    args = ["classify", "--index", str(built), *_text_args(), "--output", str(out), "--top-k", "1"]
    assert main(args) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 3 and all(len(r["results"]) == 3 for r in records)  # the file keeps every label
    printed = capsys.readouterr().out
    assert printed.count("%") == 3  # the table shows the top 1
    assert main(args) == 0
    assert "skipping 3 video(s)" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 3


def test_search_scores_are_cosines_with_the_query(built, tiny_model, capsys):
    import torch

    capsys.readouterr()
    assert main(["search", str(built), "someone playing guitar", "--top-k", "2", "--json"]) == 0
    hits = json_lines(capsys.readouterr().out)
    videos = [h for h in hits if h["kind"] == "video"]
    moments = [h for h in hits if h["kind"] == "window"]
    assert len(videos) == 2 and len(moments) == 2
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert all({"video", "score"} <= set(h) for h in hits)
    assert all(0 <= m["start"] < m["end"] <= 2.0 for m in moments)
    # independent: the query in the model's 16 templates, averaged; the video encoded from its file
    text = tiny_model.encode_labels(["someone playing guitar"]).mean(dim=0)[0]
    text = text / text.norm()
    for hit in videos:
        with torch.no_grad():
            emb = tiny_model.encode_video(tiny_model.prepare_video(hit["path"]))[0]
        assert hit["score"] == pytest.approx(float(emb @ text / emb.norm()), abs=1e-5)
    # the ranking covers every video: the best two of all three
    everything = actionclip.open_index(built).search("someone playing guitar", top_k=10, kind="video")
    assert [h.path for h in everything[:2]] == [h["path"] for h in videos] and len(everything) == 3


def test_search_human_output_lists_videos_then_moments(built, capsys):
    capsys.readouterr()
    assert main(["search", str(built), "running", "-k", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "videos:" and lines[2] == "moments:" and len(lines) == 4
    assert lines[3].rstrip().endswith(" s")


def test_moments_follow_the_timeline_windows(built):
    from actionclip.temporal.plan import plan_sampling

    idx = actionclip.open_index(built)
    rows = idx.store.scan(["video", "kind", "start", "end"], kind="window").to_pylist()
    plan = plan_sampling(1.0, 0.5, idx.meta["frames"])
    assert idx.meta["window"] == plan.effective_window and idx.meta["stride"] == plan.stride
    per_video: dict[str, list] = {}
    for r in rows:
        per_video.setdefault(Path(r["video"]).name, []).append(r["start"])
    assert sorted(per_video) == ["a.mp4", "b.mp4", "c.mkv"]
    starts = sorted(per_video["b.mp4"])  # 2 s video: windows every 0.5 s while a whole one fits
    assert starts == pytest.approx([0.0, 0.5, 1.0], abs=0.11)


# ----------------------------------------------------------------------------------------------
# Incremental and resumable


def _video_rows(out: Path) -> list[dict]:
    return actionclip.open_index(out).store.scan(["path", "vector", "mtime_ns"], kind="video").to_pylist()


def test_rerun_encodes_only_changed_and_new_files(folder, ckpt, tmp_path):
    videos = _copy(folder, tmp_path)
    out = tmp_path / "idx"
    first = actionclip.index([videos], out, model=str(ckpt), dtype="fp32").report
    assert (first.encoded, first.unchanged) == (3, 0)
    before = {r["path"]: r for r in _video_rows(out)}

    again = actionclip.index([videos], out).report  # the index's own model and settings
    assert (again.encoded, again.unchanged) == (0, 3)

    touched = videos / "a.mp4"
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    make_video(videos / "new.mp4", seconds=1.0, size=(80, 48))
    report = actionclip.index([videos], out).report
    assert (report.encoded, report.replaced, report.unchanged) == (2, 1, 2)

    after = _video_rows(out)
    paths = [r["path"] for r in after]
    assert len(paths) == len(set(paths)) == 4  # nothing duplicated
    for r in after:
        if r["path"] in before and Path(r["path"]).name != "a.mp4":
            assert r["vector"] == before[r["path"]]["vector"]  # untouched rows are the same rows
    changed = next(r for r in after if Path(r["path"]).name == "a.mp4")
    assert changed["mtime_ns"] == touched.stat().st_mtime_ns
    np.testing.assert_allclose(changed["vector"], before[str(touched.resolve())]["vector"], atol=1e-6)


# Runs the CLI with the index writing every video at once and read_video stalling forever on files
# named "*stall*" (or, with STALL_AFTER_DELETE, stalling between deleting a changed video's old rows
# and adding its new ones): the test kills it there with SIGKILL.
_DRIVER = """
import os, sys, time
import actionclip.video.decode as video
import actionclip.collection.build as build
import actionclip.collection.store as store
build.COMMIT_VIDEOS = 1
real_read = video.read_video
def read_video(path, *args, **kwargs):
    if "stall" in str(path):
        print("STALLED", flush=True)
        time.sleep(3600)
    return real_read(path, *args, **kwargs)
video.read_video = read_video
if os.environ.get("STALL_AFTER_DELETE"):
    real_add = store.Store.add
    def add(self, meta, cols, replace=(), *args):
        if replace:
            self.table().delete("path IN (" + ", ".join(store._sql(p) for p in replace) + ")")
            print("STALLED", flush=True)
            time.sleep(3600)
        return real_add(self, meta, cols, replace, *args)
    store.Store.add = add
from actionclip.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run_and_kill(args: list[str], env: dict[str, str] | None = None) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, *map(str, args)], cwd=REPO_ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 90
        line = ""
        while "STALLED" not in line:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never reached the stall"
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_killed_run_resumes_losing_and_duplicating_nothing(folder, ckpt, tmp_path):
    videos = tmp_path / "v"
    videos.mkdir()
    for name in ("1_first.mp4", "2_stall.mp4", "3_last.mp4"):
        shutil.copy(folder / "a.mp4", videos / name)
    out = tmp_path / "idx"
    args = ["index", videos, "--out", out, "--model", ckpt, "--dtype", "fp32", "--workers", "0"]
    _run_and_kill(args)
    assert [Path(r["path"]).name for r in _video_rows(out)] == ["1_first.mp4"]  # committed before the kill

    report = actionclip.index([videos], out).report  # the same run again
    assert (report.encoded, report.unchanged) == (2, 1)
    names = sorted(Path(r["path"]).name for r in _video_rows(out))
    assert names == ["1_first.mp4", "2_stall.mp4", "3_last.mp4"]

    # killed between deleting a changed video's old rows and adding its new ones
    target = videos / "3_last.mp4"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    _run_and_kill(args, env={"STALL_AFTER_DELETE": "1"})
    assert sorted(Path(r["path"]).name for r in _video_rows(out)) == ["1_first.mp4", "2_stall.mp4"]
    report = actionclip.index([videos], out).report
    assert (report.encoded, report.unchanged) == (1, 2)
    rows = _video_rows(out)
    assert sorted(Path(r["path"]).name for r in rows) == names
    vectors = {Path(r["path"]).name: r["vector"] for r in rows}
    np.testing.assert_allclose(vectors["3_last.mp4"], vectors["1_first.mp4"], atol=1e-6)  # same content


# ----------------------------------------------------------------------------------------------
# Models whose text depends on the video: VideoFeatures round-trip


def test_video_features_round_trip_through_the_index(folder, tmp_path):
    from actionclip.collection.store import from_rows, to_rows
    from actionclip.model.scoring import VideoFeatures

    rng = np.random.default_rng(0)
    features = VideoFeatures(rng.standard_normal((3, 2, 16)).astype(np.float32),
                             rng.standard_normal((3, 2, 4, 16)).astype(np.float32))
    back = from_rows(to_rows(features), views=2, dim=16, features_kind="VideoFeatures")
    np.testing.assert_array_equal(back.embedding, features.embedding)
    np.testing.assert_array_equal(back.tokens, features.tokens)

    model = ToyModel(tokens=True)
    idx = actionclip.index([folder], tmp_path / "idx", model=model, clips=2)
    assert idx.report.encoded == 3 and "tokens" in idx.store.columns()
    reopened = actionclip.open_index(tmp_path / "idx", model=ToyModel(tokens=True))
    result = reopened.classify(LABELS)
    for path, row in zip(result.paths, result.probs):
        expected = dict(model.classify(path, LABELS, clips=2))
        np.testing.assert_allclose(row, [expected[label] for label in LABELS], atol=1e-6)
    # search uses the model's own (video-dependent) scores, for every stored video
    hits = reopened.search("playing guitar", top_k=3)
    query = model.encode_labels(["playing guitar"])
    for hit in hits:
        feats = model.encode_video(model.prepare_video(hit.path, clips=2))
        feats = VideoFeatures(feats.embedding[None], feats.tokens[None])
        assert hit.score == pytest.approx(float(model.logits(feats, query).mean()) / model.logit_scale, abs=1e-5)
    with pytest.raises(actionclip.UsageError, match="not with this one"):
        actionclip.open_index(tmp_path / "idx", model=ToyModel(tokens=True, seed=3)).classify(LABELS)


# ----------------------------------------------------------------------------------------------
# Errors: one line


def test_errors_are_one_line(folder, ckpt, tmp_path, capsys):
    videos = _copy(folder, tmp_path)
    (videos / "broken.mp4").write_bytes(b"not a video at all")
    model_file = tmp_path / "model.pt"
    shutil.copy(ckpt, model_file)
    out = tmp_path / "idx"
    capsys.readouterr()
    assert main(["index", str(videos), "--out", str(out), "--model", str(model_file), "--dtype", "fp32"]) == 1
    err = capsys.readouterr().err
    assert error_lines(err) == [line for line in err.splitlines() if "broken.mp4" in line]
    assert len(error_lines(err)) == 1 and "3 encoded" in err and "1 failed" in err  # the run went on

    cases = [
        (["search", str(tmp_path), "x"], "not an actionclip index"),
        (["classify", str(videos), "--index", str(out), "--text", "a", "--text", "b"], "not both"),
        (["classify", "--index", str(out), "--text", "a", "--text", "b", "--frames", "4"], "the index's own"),
        (["index", str(videos), "--out", str(out), "--frames", "4"], "built with frames = 8"),
    ]
    for args, message in cases:
        assert main(args) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("actionclip: error: ") and message in lines[0], lines

    from actionclip._dev.weights import write_checkpoint

    write_checkpoint(model_file, format="actionclip", seed=5)  # other weights under the same name
    assert main(["search", str(out), "running"]) == 1
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "not the one this index was built with" in line
    model_file.unlink()
    assert main(["search", str(out), "running"]) == 1
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "model file this index was built with is missing" in line


@pytest.mark.parametrize("missing", ["lancedb", "pyarrow"])
def test_a_missing_extra_is_a_one_line_install_hint_before_any_work(monkeypatch, tmp_path, folder, missing):
    """Either half of the index extra missing: one line, before a single video is encoded (it once
    came as a pyarrow traceback after the encoding)."""
    model = ToyModel()
    monkeypatch.setitem(sys.modules, missing, None)
    monkeypatch.setattr(model, "encode_video", lambda *a: pytest.fail("encoded before checking the extra"))
    with pytest.raises(actionclip.UsageError, match=rf"needs {missing}, which is not installed: pip install \"actionclip\[index\]\""):
        actionclip.index([folder], tmp_path / "idx", model=model)
    with pytest.raises(actionclip.UsageError, match=r"pip install \"actionclip\[index\]\""):
        actionclip.open_index(tmp_path / "idx")


# ----------------------------------------------------------------------------------------------
# Real clips


@pytest.mark.shared_data
def test_shared_clips_index_and_classify(shared_data, ckpt, tmp_path, capsys):
    import csv

    with open(shared_data / "clips" / "manifest.csv", newline="") as f:
        clips = [shared_data / "clips" / row["path"] for row in list(csv.DictReader(f))[:3]]
    out = tmp_path / "idx"
    assert main(["index", *map(str, clips), "--out", str(out), "--model", str(ckpt), "--dtype", "fp32"]) == 0
    capsys.readouterr()
    assert main(["classify", "--index", str(out), *_text_args(), "--json"]) == 0
    from_index = {r["video"]: r for r in json_lines(capsys.readouterr().out)}
    assert main(["classify", *map(str, clips), *_text_args(), "--model", str(ckpt), "--dtype", "fp32",
                 "--json"]) == 0
    for record in json_lines(capsys.readouterr().out):
        mine = {r["label"]: r["prob"] for r in from_index[record["video"]]["results"]}
        for r in record["results"]:
            assert mine[r["label"]] == pytest.approx(r["prob"], abs=1e-5)
    assert main(["search", str(out), "a person riding a horse", "--json", "-k", "2"]) == 0
    assert len(json_lines(capsys.readouterr().out)) == 2


def test_large_index_gets_an_ann_index_and_search_uses_it(folder, tmp_path):
    from actionclip.collection.store import Store

    model = ToyModel()
    out = tmp_path / "idx"
    actionclip.index([folder], out, model=model)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    names = [f"/synthetic/{i}.mp4" for i in range(len(vectors))]
    store = Store(out)
    store.add({"path": names, "video": names, "kind": ["video"] * 3000, "start": [0.0] * 3000, "end": [1.0] * 3000,
               "size": [1] * 3000, "mtime_ns": [0] * 3000, "duration": [1.0] * 3000}, {"vector": vectors})
    store.finish(ann_min_rows=1000)
    assert [i.columns for i in store.table().list_indices()] == [["vector"]]
    idx = actionclip.open_index(out, model=model)
    query = idx._query("someone juggling")
    q = np.asarray(query).mean(axis=0)[0]
    q /= np.linalg.norm(q)
    stored = idx.store.scan(["path", "vector"], kind="video")
    exact = np.argsort(-(np.stack(stored["vector"].to_numpy(zero_copy_only=False)) @ q))[:5]
    expected = [stored["path"][int(i)].as_py() for i in exact]
    # every partition probed and the candidates reranked exactly: the ANN path must give the exact top 5
    hits = idx.search("someone juggling", top_k=5, kind="video", nprobes=64, refine_factor=10)
    assert [h.path for h in hits] == expected
