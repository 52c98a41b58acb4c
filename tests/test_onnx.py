"""ONNX export round trip and the torch-free ONNX Runtime backend.

Parity contract: every graph, and the end-to-end probabilities, within 1e-4 (fp32) of the torch
model on the same inputs; the backend's numpy preprocessing within one grey level of the torch one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from actionclip.onnx import backend as onnx_backend  # noqa: E402
from actionclip.errors import CheckpointError, UsageError  # noqa: E402
from actionclip.onnx.export import GRAPHS, export_onnx  # noqa: E402

TOL = 1e-4
LABELS = ["riding a bike", "playing the violin", "juggling", "swimming"]


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):
    """The tiny model exported once with int8 graphs too (int8 adds ~2 s)."""
    import actionclip

    model = actionclip.load(tiny_checkpoint, dtype="fp32")
    out = tmp_path_factory.mktemp("onnx") / "export"
    result = export_onnx(model, out, stem="tiny", int8=True)
    return model, result


@pytest.fixture(scope="module")
def backend(exported):
    return onnx_backend.load(exported[1].directory)


@pytest.fixture(scope="module")
def video_file(tmp_path_factory):
    from actionclip._dev.videos import make_test_video

    return make_test_video(tmp_path_factory.mktemp("vid") / "clip.mp4", seconds=1.2, size=(80, 60), fps=25)


def _frames(n=20, h=60, w=90, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_layout_and_metadata(exported):
    model, result = exported
    names = sorted(p.name for p in result.directory.iterdir())
    assert names == sorted([f"tiny-{g}.onnx" for g in GRAPHS] + [f"tiny-{g}.int8.onnx" for g in GRAPHS]
                           + ["tiny.json"])  # no temporary folder left behind
    meta = json.loads(result.metadata_path.read_text())
    assert meta["frames"] == model.num_frames == 8
    assert meta["fusion"] == "Transf"
    assert meta["resolution"] == model.input_resolution
    assert meta["logit_scale"] == pytest.approx(float(model.logit_scale.detach()))
    # ailia's I/O names and dynamic batch axes
    graph = onnx.load(str(result.files["image_clip"]))
    assert graph.graph.input[0].name == "images" and graph.graph.output[0].name == "image_features"
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    text = onnx.load(str(result.files["text_clip"]))
    dims = text.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_param  # batch and sequence length dynamic


@pytest.mark.parametrize("batch", [1, 5])
def test_image_graph_parity(exported, backend, batch):
    model, _ = exported
    x = torch.randn(batch, 3, model.input_resolution, model.input_resolution, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        ref = model.encode_image(x).numpy()
    out = backend.encode_image(x.numpy())
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= TOL


@pytest.mark.parametrize("batch", [1, 4])
def test_fusion_graph_parity(exported, backend, batch):
    model, _ = exported
    x = torch.randn(batch, model.num_frames, model.embed_dim, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        ref = model.fuse(x).numpy()
    assert np.abs(backend.fuse(x.numpy()) - ref).max() <= TOL


def test_text_graph_parity_full_and_cut_length(exported, backend):
    from actionclip.text.tokenizer import tokenize

    model, result = exported
    texts = ["a", "Can you recognize the action of playing the violin?", "x " * 90]  # last one truncated
    tokens = tokenize(texts)
    with torch.no_grad():
        ref = model.encode_tokens(tokens).numpy()
    # the raw graph on all 77 columns ...
    sess = ort.InferenceSession(str(result.files["text_clip"]), providers=["CPUExecutionProvider"])
    full = sess.run(None, {"tokens": tokens.numpy()})[0]
    assert np.abs(full - ref).max() <= TOL
    # ... and the backend, which cuts the batch after its last end token
    assert np.abs(backend.encode_tokens(tokens.numpy()) - ref).max() <= TOL
    short = tokenize(["a", "b c"]).numpy()
    with torch.no_grad():
        ref_short = model.encode_tokens(torch.from_numpy(short)).numpy()
    assert np.abs(backend.encode_tokens(short) - ref_short).max() <= TOL


def test_tokenizer_without_torch_matches(exported):
    from actionclip.text.tokenizer import token_ids, tokenize

    texts = ["hello world", "The man is doing a cartwheel!", "word " * 100, ""]
    assert np.array_equal(token_ids(texts), tokenize(texts).numpy())


def test_labels_and_probabilities_parity(exported, backend):
    model, _ = exported
    with torch.no_grad():
        ref_labels = model.encode_labels(LABELS)
    labels = backend.encode_labels(LABELS)
    assert labels.shape == tuple(ref_labels.shape) == (16, len(LABELS), model.embed_dim)
    assert np.abs(labels - ref_labels.numpy()).max() <= TOL
    pixels = model.prepare_video(_frames(), clips=1, crops=3)  # [3 views, T, 3, R, R]
    with torch.no_grad():
        ref = model.probabilities(model.encode_video(pixels)[None], ref_labels).numpy()
    out = backend.probabilities(backend.encode_video(pixels.numpy())[None], labels)
    assert np.abs(out - ref).max() <= TOL
    # the same through classify on normalised pixels
    ranked = backend.classify(pixels.numpy(), LABELS)
    ranked_ref = model.classify(pixels, LABELS)
    assert [l for l, _ in ranked] == [l for l, _ in ranked_ref]
    assert max(abs(a[1] - b[1]) for a, b in zip(ranked, ranked_ref)) <= TOL


def test_classify_video_file_matches_torch(exported, backend, video_file):
    model, _ = exported
    ranked = backend.classify(video_file, LABELS, clips=2)
    ranked_ref = model.classify(video_file, LABELS, clips=2)
    assert [l for l, _ in ranked] == [l for l, _ in ranked_ref]
    # preprocessing may differ by a grey level on a few pixels: a looser bound than the graphs' 1e-4
    assert max(abs(a[1] - b[1]) for a, b in zip(ranked, ranked_ref)) <= 1e-3
    assert sum(p for _, p in ranked) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("mode, seed", [("center", None), ("random", 3)])
def test_decoded_frames_give_the_same_views_and_scores_as_torch(exported, backend, mode, seed):
    """Issue 9's defect: given decoded frames, the ONNX backend sampled one centre clip and ignored
    clips, mode and seed. Both backends now take the one VideoViews path."""
    model, _ = exported
    frames = _frames(n=37, h=50, w=70, seed=4)
    options = dict(clips=2, crops=3, mode=mode, seed=seed)
    views = backend.prepare_video(frames, **options)
    ref_views = model.prepare_video(frames, **options).numpy()
    assert views.shape == ref_views.shape == (6, model.num_frames, 3, 32, 32)
    # one grey level at most, where a resize lands on the other side of .5 (see test_preprocess)
    assert np.abs(views - ref_views).max() <= 1.0001 / (255 * 0.26)
    ranked = backend.classify(frames, LABELS, **options)
    ranked_ref = model.classify(frames, LABELS, **options)
    assert [l for l, _ in ranked] == [l for l, _ in ranked_ref]
    assert max(abs(a[1] - b[1]) for a, b in zip(ranked, ranked_ref)) <= 1e-3


def test_backend_never_imports_torch(exported, video_file):
    code = f"""
import sys, numpy as np
from actionclip.onnx import backend as onnx_backend
m = onnx_backend.load({str(exported[1].directory)!r})
frames = np.random.default_rng(0).integers(0, 256, (12, 50, 70, 3), dtype=np.uint8)
r1 = m.classify(frames, ["a", "b", "c"])
r2 = m.classify({str(video_file)!r}, ["a", "b", "c"], crops=3)
assert len(r1) == len(r2) == 3, (r1, r2)
bad = sorted(k for k in sys.modules if k == "torch" or k.startswith("torch."))
print("TORCH:" + ",".join(bad))
"""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "TORCH:"


def test_int8_graphs_load_and_drift_is_reported(exported, backend):
    _, result = exported
    drift = result.int8_drift
    assert set(drift) >= {"image_features", "text_features", "fused_image_features", "probabilities"}
    # quantisation moves the numbers, but not far (random weights: a pessimistic case)
    assert 0 < drift["image_features"] < 0.1 and 0 < drift["probabilities"] < 0.1
    q = onnx_backend.load(result.directory, int8=True)
    assert q.precision == "int8"
    x = np.random.default_rng(3).standard_normal((2, q.num_frames, 3, q.input_resolution, q.input_resolution))
    a, b = backend.encode_video(x), q.encode_video(x)
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    assert (cos > 0.99).all() and not np.array_equal(a, b)


def test_load_errors(exported, tmp_path):
    with pytest.raises(CheckpointError, match="no such ONNX export"):
        onnx_backend.load(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="not an ActionCLIP ONNX export"):
        onnx_backend.load(tmp_path)
    # a JSON pointing at a graph that is not there
    meta = json.loads(exported[1].metadata_path.read_text())
    meta["files"]["fusion"] = "gone.onnx"
    (tmp_path / "m.json").write_text(json.dumps(meta))
    for graph in ("image_clip", "text_clip"):
        os.symlink(exported[1].files[graph], tmp_path / meta["files"][graph])
    with pytest.raises(CheckpointError, match="gone.onnx: graph missing"):
        onnx_backend.load(tmp_path)
    backend = onnx_backend.load(exported[1].directory)
    with pytest.raises(UsageError):
        backend.encode_image(np.zeros((1, 3, 7, 7), np.float32))
    with pytest.raises(UsageError):
        backend.classify(_frames(), ["a", "a"])


def test_export_command(tiny_checkpoint, tmp_path, capsys):
    from actionclip.cli import main

    out = tmp_path / "cli"
    assert main(["export", str(tiny_checkpoint), "--onnx", str(out), "--name", "m", "--no-check"]) == 0
    printed = capsys.readouterr().out
    assert "m-image_clip.onnx" in printed and "m.json" in printed
    assert onnx_backend.load(out).num_frames == 8
    (tmp_path / "file").write_text("x")
    assert main(["export", str(tiny_checkpoint), "--onnx", str(tmp_path / "file")]) == 1
    assert "file" in capsys.readouterr().err


def test_classify_runs_the_int8_graphs_that_export_int8_writes(tiny_checkpoint, video_file, tmp_path, capsys):
    """``classify --backend onnx --onnx-precision int8`` runs the graphs of ``export --int8`` and says so.

    Tolerance: on the tiny random model (logit scale 100) int8 moved probabilities by at most 0.018
    (4 generated videos x 5 labels; unit video embeddings by 0.005, unit text embeddings by 0.018), so
    0.05 is about 3x the measured drift: it catches graphs that are not the same model, while the
    int8 result must also differ from fp32 (else the fp32 graphs ran)."""
    from actionclip.cli import main

    out = tmp_path / "export"
    assert main(["export", str(tiny_checkpoint), "--onnx", str(out), "--int8", "--no-check"]) == 0
    labels = [arg for label in LABELS for arg in ("-t", label)]

    def classify(*extra: str) -> tuple[dict, list[str]]:
        capsys.readouterr()
        assert main(["classify", str(video_file), "--backend", "onnx", "-m", str(out), "--json", *labels, *extra]) == 0
        cap = capsys.readouterr()
        return json.loads(cap.out), [line for line in cap.err.splitlines() if "ONNX graphs" in line]

    runs = {p: classify("--onnx-precision", p) for p in ("fp32", "int8")}
    runs["default"] = classify()
    for precision, (_, said) in runs.items():
        assert said == [f"actionclip: running the {'fp32' if precision == 'default' else precision} ONNX graphs "
                        f"of {out} (CPUExecutionProvider)"]
    fp32, int8 = runs["fp32"][0], runs["int8"][0]
    assert int8["model"] == fp32["model"] + " (int8)" and runs["default"][0] == fp32
    p32 = {r["label"]: r["prob"] for r in fp32["results"]}
    p8 = {r["label"]: r["prob"] for r in int8["results"]}
    assert fp32["results"][0]["label"] == int8["results"][0]["label"]
    assert max(abs(p8[k] - p32[k]) for k in LABELS) < 0.05
    assert max(abs(p8[k] - p32[k]) for k in LABELS) > 1e-6

    for path in out.glob("*.onnx"):  # an export shipped with its int8 graphs only: auto runs them
        if not path.name.endswith(".int8.onnx"):
            path.unlink()
    assert classify()[1] == [f"actionclip: running the int8 ONNX graphs of {out} (CPUExecutionProvider)"]
    capsys.readouterr()
    assert main(["classify", str(video_file), "--backend", "onnx", "-m", str(out), "--onnx-precision", "fp32",
                 *labels]) == 1
    assert "graph missing" in capsys.readouterr().err


def test_backend_precision_errors(exported, tmp_path):
    meta = json.loads(exported[1].metadata_path.read_text())
    meta["int8_files"] = None
    (tmp_path / "m.json").write_text(json.dumps(meta))
    for graph, name in meta["files"].items():
        os.symlink(exported[1].files[graph], tmp_path / name)
    assert onnx_backend.load(tmp_path).precision == "fp32"
    with pytest.raises(CheckpointError, match="no int8 graphs"):
        onnx_backend.load(tmp_path, precision="int8")
    with pytest.raises(UsageError, match="precision 'int4'"):
        onnx_backend.load(tmp_path, precision="int4")
