"""The on-disk cache of label embeddings: hits, keys, partial hits, concurrent writers, the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from actionclip.model import label_cache
from cli_support import REPO_ROOT, ckpt, make_video  # noqa: F401
from index_support import ToyModel

LABELS = ["running", "Playing  Guitar", "cooking"]


def _files() -> list[Path]:
    root = label_cache.cache_root()
    return sorted(p for p in root.rglob("*.npz") if not p.name.startswith(".")) if root.exists() else []


def test_second_call_reads_the_disk_and_matches_the_encoder():
    model = ToyModel()
    reference = model.encode_labels(LABELS)
    first = label_cache.encode_labels(model, LABELS)
    encoded = model.prompts_encoded
    assert encoded == 2 * len(reference[0]) * 2  # reference + first run: 2 templates x 3 labels each
    again = ToyModel()  # a new process would start from here
    second = label_cache.encode_labels(again, LABELS)
    assert again.prompts_encoded == 0
    np.testing.assert_allclose(second, reference, atol=1e-6)
    np.testing.assert_allclose(first, reference, atol=1e-6)
    # the key is the normalised label: case and spacing do not matter, order is the caller's
    third = label_cache.encode_labels(again, ["cooking", "playing guitar"])
    assert again.prompts_encoded == 0
    np.testing.assert_allclose(third, reference[:, [2, 1]], atol=1e-6)


def test_only_missing_labels_are_encoded():
    model = ToyModel()
    label_cache.encode_labels(model, LABELS[:2])
    model.prompts_encoded = 0
    out = label_cache.encode_labels(model, LABELS)
    assert model.prompts_encoded == 2  # "cooking" in the 2 templates
    np.testing.assert_allclose(out, ToyModel().encode_labels(LABELS), atol=1e-6)


def test_key_changes_with_template_model_and_config():
    model = ToyModel()
    label_cache.encode_labels(model, LABELS)
    for other, templates in [(ToyModel(), ["a clip of {}"]),  # another template
                             (ToyModel(seed=1), None)]:  # other weights (fingerprint)
        other.prompts_encoded = 0
        out = label_cache.encode_labels(other, LABELS, templates)
        assert other.prompts_encoded > 0
        np.testing.assert_allclose(out, other.encode_labels(LABELS, templates), atol=1e-6)
    changed = ToyModel()
    changed.config = changed.config.replace(frames=8)
    assert label_cache.model_key(changed) != label_cache.model_key(model)


def test_model_without_fingerprint_is_not_cached():
    model = ToyModel()
    model.fingerprint = None
    label_cache.encode_labels(model, LABELS)
    assert _files() == []


def test_loaded_model_has_a_fingerprint_until_trained(tiny_checkpoint):
    import actionclip

    model = actionclip.load(tiny_checkpoint, dtype="fp32")
    assert model.fingerprint and model.source
    key = label_cache.model_key(model)
    assert key == label_cache.model_key(actionclip.load(tiny_checkpoint, dtype="fp32"))
    assert key != label_cache.model_key(actionclip.load(tiny_checkpoint, dtype="bf16"))
    model.train()
    assert label_cache.model_key(model) is None  # weights about to change: never cached
    model.eval()
    assert label_cache.model_key(model) is None


def test_many_shards_are_merged_without_losing_entries(monkeypatch):
    monkeypatch.setattr(label_cache, "MAX_SHARDS", 3)
    model = ToyModel()
    words = [f"action {i}" for i in range(10)]
    for word in words:
        label_cache.encode_labels(model, [word])
    per_template = {p.parent for p in _files()}
    assert len(per_template) == 2
    assert all(len(list(folder.glob("*.npz"))) <= 3 for folder in per_template)
    model.prompts_encoded = 0
    out = label_cache.encode_labels(model, words)
    assert model.prompts_encoded == 0
    np.testing.assert_allclose(out, ToyModel().encode_labels(words), atol=1e-6)


_WRITER = """
import sys
sys.path.insert(0, "tests")
import numpy as np
from actionclip.model import label_cache
from index_support import ToyModel
label_cache.MAX_SHARDS = 2  # merge all the time: merges race with the other writer's shards
model = ToyModel()
worker = int(sys.argv[1])
for i in range(30):
    labels = [f"label {(worker * 7 + i * 3 + j) % 40}" for j in range(4)]
    out = label_cache.encode_labels(model, labels)
    ref = ToyModel().encode_labels(labels)
    assert np.allclose(out, ref, atol=1e-6), (worker, i)
print("ok")
"""


def test_concurrent_writers_never_corrupt_the_cache(tmp_path):
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(w)], cwd=REPO_ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(3)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "ok", err
    for shard in _files():  # every file left is whole
        with np.load(shard, allow_pickle=False) as data:
            assert len(data["keys"]) == len(data["emb"])
    labels = [f"label {i}" for i in range(40)]
    model = ToyModel()
    out = label_cache.encode_labels(model, labels)
    assert model.prompts_encoded == 0  # everything the writers computed is there
    np.testing.assert_allclose(out, ToyModel().encode_labels(labels), atol=1e-6)


def test_classify_takes_builtin_lists_and_caches_them(ckpt, tmp_path, capsys, monkeypatch):
    from actionclip.cli import main
    from actionclip.model.actionclip import ActionCLIP

    video = make_video(tmp_path / "a.mp4")
    calls = []
    real = ActionCLIP.encode_tokens
    monkeypatch.setattr(ActionCLIP, "encode_tokens", lambda self, t: calls.append(len(t)) or real(self, t))
    args = ["classify", str(video), "--labels", "ucf101", "--model", str(ckpt), "--dtype", "fp32", "--top-k", "3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert sum(calls) == 101 * 16
    calls.clear()
    assert main(args) == 0
    assert calls == []  # the second run reads the 1,616 prompt embeddings from disk
    assert capsys.readouterr().out == first
    from actionclip.text.classes import builtin_labels

    lines = first.splitlines()
    assert len(lines) == 4 and all(line.strip().rsplit(None, 1)[0] in builtin_labels("ucf101") for line in lines[1:])


def test_the_server_label_cache_reads_what_an_earlier_run_embedded():
    """serve's in-memory LRU sits on the disk cache: a new server (a new model object) finds the
    labels an earlier CLI run or server embedded, and encodes nothing."""
    from actionclip.serve.labels import LabelCache

    label_cache.encode_labels(ToyModel(), LABELS)  # an earlier run
    fresh = ToyModel()
    got = LabelCache(fresh, "toy").get(LABELS)
    assert fresh.prompts_encoded == 0
    np.testing.assert_allclose(got, ToyModel().encode_labels(LABELS), atol=1e-6)
