"""Retrieval recall: a loop restatement, hand-computed cases, CLIP4Clip's own metrics.py, an index.

CLIP4Clip's ``metrics.py`` (ArrowLuo/CLIP4Clip) is never committed here: the comparison runs when
``ACTIONCLIP_CLIP4CLIP`` names a folder holding it (see docs/evaluation.md), and skips otherwise.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from actionclip.errors import UsageError
from actionclip.evaluation.retrieval import rank_positions, retrieval_metrics

# ----------------------------------------------------------------------------------------------
# The restatement: from the definition, with loops.


def _loop_ranks(sim):
    """Each row: sort its values high to low; every position holding the true (diagonal) value is a rank."""
    ranks = []
    for i, row in enumerate(sim):
        ordered = sorted((v for v in row if v == v), reverse=True)  # NaN never equals anything
        ranks += [pos for pos, v in enumerate(ordered) if v == row[i]]
    return ranks


def _loop_metrics(ranks, lower_median=False):
    n = len(ranks)
    s = sorted(ranks)
    median = s[(n - 1) // 2] + 1 if lower_median else ((s[n // 2] + s[(n - 1) // 2]) / 2 + 1)
    return {"R1": 100 * sum(r < 1 for r in ranks) / n, "R5": 100 * sum(r < 5 for r in ranks) / n,
            "R10": 100 * sum(r < 10 for r in ranks) / n, "MedianR": median, "MeanR": sum(ranks) / n + 1}


def _close(ours, theirs, keys=("R1", "R5", "R10", "MedianR", "MeanR"), rel=1e-12):
    for k in keys:
        assert ours[k] == pytest.approx(float(theirs[k]), rel=rel, abs=1e-12), (k, ours, theirs)


@pytest.mark.parametrize("ties", [False, True])
def test_single_caption_equals_the_restatement(ties):
    rng = np.random.default_rng(3 + ties)
    for _ in range(40):
        n = int(rng.integers(1, 30))
        sim = rng.integers(0, 4, (n, n)).astype(float) if ties else rng.standard_normal((n, n))
        m = retrieval_metrics(sim)
        _close(m["text_to_video"], _loop_metrics(_loop_ranks(sim)))
        _close(m["video_to_text"], _loop_metrics(_loop_ranks(sim.T)))


def test_several_captions_equal_the_restatement():
    rng = np.random.default_rng(5)
    for _ in range(30):
        n_video = int(rng.integers(1, 15))
        owner = np.concatenate([np.arange(n_video), rng.integers(0, n_video, int(rng.integers(0, 30)))])
        rng.shuffle(owner)
        sim = rng.standard_normal((len(owner), n_video))
        m = retrieval_metrics(sim, owner)
        t2v = [sum(sim[t, v] > sim[t, owner[t]] for v in range(n_video)) for t in range(len(owner))]
        _close(m["text_to_video"], _loop_metrics(t2v, lower_median=True))
        best = np.array([[max(sim[t, v] for t in range(len(owner)) if owner[t] == g) for v in range(n_video)]
                         for g in range(n_video)])
        _close(m["video_to_text"], _loop_metrics(_loop_ranks(best.T)))


def test_hand_computed_cases():
    sim = np.array([[0.9, 0.1, 0.2],    # text 0: video 0 first           -> rank 0
                    [0.8, 0.5, 0.1],    # text 1: video 1 second          -> rank 1
                    [0.3, 0.3, 0.3]])   # text 2: three-way tie           -> ranks 0, 1, 2
    assert rank_positions(sim).tolist() == [0, 1, 0, 1, 2]
    t2v = retrieval_metrics(sim)["text_to_video"]
    # five ranks: two zeros -> R@1 40%; median rank 1 (+1) = 2; mean (0+1+0+1+2)/5 + 1 = 1.8
    assert t2v["R1"] == pytest.approx(40.0) and t2v["R5"] == 100.0 and t2v["MedianR"] == 2.0
    assert t2v["MeanR"] == pytest.approx(1.8) and t2v["queries"] == 5
    # two captions for video 0: the second ranks video 0 third (0.2 < 0.5, 0.4); video 1 first
    multi = retrieval_metrics([[0.9, 0.1], [0.2, 0.5], [0.3, 0.6]], [0, 0, 1])
    assert multi["text_to_video"]["R1"] == pytest.approx(200 / 3) and multi["text_to_video"]["MedianR"] == 1.0
    # video->text: video 0's best caption scores 0.9 vs video 1's 0.3; video 1: 0.6 vs 0.5 -> both rank 0
    assert multi["video_to_text"]["R1"] == 100.0


def test_bad_shapes_name_the_parameter():
    with pytest.raises(UsageError, match="text_videos"):
        retrieval_metrics(np.zeros((3, 2)))
    with pytest.raises(UsageError, match="video 1 has no caption"):
        retrieval_metrics(np.zeros((2, 2)), [0, 0])


# ----------------------------------------------------------------------------------------------
# CLIP4Clip's own metrics.py, when it is available.

_C4C = os.environ.get("ACTIONCLIP_CLIP4CLIP")


def _clip4clip():
    spec = importlib.util.spec_from_file_location("clip4clip_metrics", Path(_C4C) / "metrics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _padded(sim, owner):
    """[videos, most captions, videos]: each video's caption rows, padded with -inf rows (as CLIP4Clip
    arranges its multi-sentence matrix before scoring)."""
    n_video = sim.shape[1]
    groups = [sim[owner == g] for g in range(n_video)]
    width = max(len(g) for g in groups)
    return np.stack([np.concatenate([g, np.full((width - len(g), n_video), -np.inf)]) for g in groups])


@pytest.mark.skipif(not _C4C or not (Path(_C4C) / "metrics.py").is_file(),
                    reason="set ACTIONCLIP_CLIP4CLIP to a folder holding ArrowLuo/CLIP4Clip's metrics.py "
                           "to compare with CLIP4Clip's own code")
def test_equals_clip4clip_metrics():
    torch = pytest.importorskip("torch")
    c4c = _clip4clip()
    rng = np.random.default_rng(11)
    compared = 0
    for k in range(30):  # one caption per video, with and without ties
        n = int(rng.integers(2, 60))
        sim = rng.integers(0, 5, (n, n)).astype(float) if k % 3 == 0 else rng.standard_normal((n, n))
        ours = retrieval_metrics(sim)
        _close(ours["text_to_video"], c4c.compute_metrics(sim))
        _close(ours["video_to_text"], c4c.compute_metrics(sim.T))
        compared += 1
    for k in range(20):  # several captions per video (no ties: CLIP4Clip leaves their order to torch)
        n_video = int(rng.integers(2, 25))
        owner = np.sort(np.concatenate([np.arange(n_video), rng.integers(0, n_video, int(rng.integers(0, 60)))]))
        sim = rng.standard_normal((len(owner), n_video))
        ours = retrieval_metrics(sim, owner)
        tensor = _padded(sim, owner)
        # CLIP4Clip's multi-caption R@K are float32 torch arithmetic: equal to 1e-6 relative, not to the last bit.
        _close(ours["text_to_video"], c4c.tensor_text_to_video_metrics(torch.tensor(tensor)), rel=1e-6)
        _close(ours["video_to_text"], c4c.compute_metrics(c4c.tensor_video_to_text_sim(torch.tensor(tensor)).numpy()))
        compared += 1
    assert compared == 50


# ----------------------------------------------------------------------------------------------
# An index and a captions file, through the command.


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny_checkpoint):
    pytest.importorskip("lancedb")
    from actionclip.cli import main
    from cli_support import make_video

    root = tmp_path_factory.mktemp("retrieval")
    for name, seconds in (("video7", 1.0), ("video8", 1.5), ("video9", 1.2)):
        make_video(root / "clips" / f"{name}.mp4", seconds=seconds)
    out = root / "clips.index"
    assert main(["index", str(root / "clips"), "--out", str(out), "--model", str(tiny_checkpoint),
                 "--dtype", "fp32"]) == 0
    return root, out


def _write_captions(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["key", "vid_key", "video_id", "sentence"])
        for i, (vid, sentence) in enumerate(rows):
            w.writerow([f"ret{i}", f"msr{i}", vid, sentence])


def test_cli_eval_retrieval_equals_metrics_of_independent_similarities(indexed, tiny_model, capsys):
    import torch

    from actionclip.cli import main

    root, out = indexed
    rows = [("video7", "a person is running"), ("video8", "someone plays the guitar"), ("video9", "a cat sleeps")]
    _write_captions(root / "one.csv", rows)
    assert main(["eval-retrieval", str(out), str(root / "one.csv"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    # independent: each video encoded from its file, each sentence embedded as written, cosines
    with torch.no_grad():
        text = tiny_model.encode_labels([s for _, s in rows], ["{}"])[0]
        vids = torch.stack([tiny_model.encode_video(tiny_model.prepare_video(root / "clips" / f"{v}.mp4"))[0]
                            for v, _ in rows])
    sim = (text / text.norm(dim=-1, keepdim=True)) @ (vids / vids.norm(dim=-1, keepdim=True)).T
    from actionclip.collection.query import open_index
    from actionclip.evaluation.retrieval import index_similarity

    stored, paths = index_similarity(open_index(out), [s for _, s in rows])
    order = [[Path(p).stem for p in paths].index(v) for v, _ in rows]
    np.testing.assert_allclose(stored[:, order], sim.numpy(), atol=1e-5)
    expected = retrieval_metrics(stored[:, order])
    assert doc["protocol"] == "one caption per video" and doc["videos"] == 3 and doc["captions"] == 3
    for direction in ("text_to_video", "video_to_text"):
        _close(doc[direction], expected[direction])
    # several captions per video -> the multi-caption protocol
    _write_captions(root / "multi.csv", rows + [("video7", "a runner outdoors")])
    assert main(["eval-retrieval", str(out), str(root / "multi.csv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["protocol"] == "several captions per video"
    # table output
    assert main(["eval-retrieval", str(out), str(root / "one.csv")]) == 0
    assert "text to video" in capsys.readouterr().out


def test_cli_eval_retrieval_bad_captions_are_one_line(indexed, capsys):
    from actionclip.cli import main

    root, out = indexed
    _write_captions(root / "unknown.csv", [("video7", "running"), ("video404", "nothing")])
    assert main(["eval-retrieval", str(out), str(root / "unknown.csv")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"actionclip: error: {root / 'unknown.csv'}: 1 video id(s) not in the index")
    assert "video404" in err and "\n" not in err
    (root / "cols.csv").write_text("id,text\nvideo7,running\n")
    assert main(["eval-retrieval", str(out), str(root / "cols.csv")]) == 1
    assert "needs 'video_id' and 'sentence' columns" in capsys.readouterr().err
