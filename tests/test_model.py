"""ActionCLIP scoring and the classify API."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import actionclip
from actionclip.errors import UsageError
from actionclip.text.labels import check_labels
from actionclip.text.templates import TEMPLATES, load_templates, resolve_templates


def test_sixteen_original_templates():
    assert len(TEMPLATES) == 16 and len(set(TEMPLATES)) == 16
    assert TEMPLATES[0] == "a photo of action {}" and TEMPLATES[-1] == "The woman is {}"
    assert all(t.count("{}") == 1 for t in TEMPLATES)


def test_probabilities_follow_the_original_protocol(tiny_model):
    torch.manual_seed(0)
    video = torch.randn(2, 3, 64)  # 2 videos x 3 views
    text = F.normalize(torch.randn(4, 5, 64), dim=-1)  # 4 templates x 5 labels
    probs = tiny_model.probabilities(video, text)
    # Re-stated: per view and template, softmax over labels of 100 * cosine; then the mean.
    expected = torch.zeros(2, 5)
    for b in range(2):
        for v in range(3):
            for k in range(4):
                cos = F.cosine_similarity(video[b, v][None], text[k], dim=-1)
                expected[b] += torch.softmax(100 * cos, dim=-1)
    expected /= 12
    assert torch.allclose(probs, expected, atol=1e-5)
    assert torch.allclose(probs.sum(-1), torch.ones(2), atol=1e-5)
    single_view = tiny_model.probabilities(video[:, 0], text)
    assert torch.allclose(single_view, tiny_model.probabilities(video[:, :1], text))


def test_encode_labels_shape_order_and_norm(tiny_model):
    labels = ["running", "walking", "sitting"]
    emb = tiny_model.encode_labels(labels)
    assert emb.shape == (16, 3, 64)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(16, 3), atol=1e-5)
    # Template-major: [k, l] is template k filled with label l.
    direct = F.normalize(tiny_model.encode_text([TEMPLATES[5].format("walking")]), dim=-1)
    assert torch.allclose(emb[5, 1], direct[0], atol=1e-5)
    custom = tiny_model.encode_labels(labels, "a video of a person {}")
    assert custom.shape == (1, 3, 64)


def test_classify_frames_array_ranks_every_label(tiny_model):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(8, 48, 64, 3), dtype=np.uint8)
    labels = ["running", "walking", "sitting", "jumping", "swimming", "eating"]
    result = tiny_model.classify(frames, labels)
    assert [label for label, _ in result] != [] and sorted(l for l, _ in result) == sorted(labels)
    probs = [p for _, p in result]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-5
    # Same answer from precomputed label embeddings, and from already-normalised pixels.
    emb = tiny_model.encode_labels(labels)
    assert tiny_model.classify(frames, labels, label_embeddings=emb) == result
    pixels = tiny_model.prepare_video(frames)
    again = tiny_model.classify(pixels[0], labels)
    assert [l for l, _ in again] == [l for l, _ in result]
    assert np.allclose([p for _, p in again], probs, atol=1e-6)


def test_classify_two_labels_and_three_crops(tiny_model):
    frames = np.random.default_rng(1).integers(0, 255, size=(12, 40, 80, 3), dtype=np.uint8)
    result = tiny_model.classify(frames, ["a", "b"], crops=3)
    assert len(result) == 2 and abs(sum(p for _, p in result) - 1) < 1e-5
    views = tiny_model.prepare_video(frames, crops=3)
    assert views.shape == (3, 8, 3, 32, 32)


@pytest.mark.parametrize("labels,match", [([], "no labels"), (["run", " "], "empty label"), (["run", "run "], "duplicate")])
def test_bad_labels(labels, match):
    with pytest.raises(UsageError, match=match):
        check_labels(labels)


def test_template_files(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("# my prompts\na clip of {}\n\nsomeone is {} outdoors\n", encoding="utf-8")
    assert load_templates(f) == ["a clip of {}", "someone is {} outdoors"]
    f.write_text("no placeholder here\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"t\.txt:1"):
        load_templates(f)
    with pytest.raises(UsageError, match="at most one"):
        resolve_templates(template="{}", templates_file=f)
    assert resolve_templates() == TEMPLATES


def test_dtype_and_unknown_model(tiny_checkpoint):
    model = actionclip.load(tiny_checkpoint, dtype="bf16")
    assert model.dtype == torch.bfloat16
    with torch.inference_mode():
        out = model.encode_video(torch.randn(1, 8, 3, 32, 32))
    assert out.dtype == torch.bfloat16
    with pytest.raises(UsageError, match="dtype 'int3': unknown"):
        actionclip.load(tiny_checkpoint, dtype="int3")
    with pytest.raises(UsageError, match="vit-b-32-8f"):
        actionclip.load("vit-b-32-8ff", dtype="fp32")


def test_labels_differing_only_in_case_or_spacing_are_duplicates():
    with pytest.raises(UsageError, match="same text for the model"):
        check_labels(["Playing  Guitar", "playing guitar"])
    assert check_labels([" run ", "walk"]) == ["run", "walk"]


def test_decoded_frames_are_sampled_like_a_file(tiny_model):
    from actionclip.video import sample_indices

    frames = np.arange(30, dtype=np.uint8)[:, None, None, None].repeat(36, 1).repeat(36, 2).repeat(3, 3)
    views = tiny_model.prepare_video(frames, clips=2)
    assert views.shape == (2, 8, 3, 32, 32)
    # Each view's frames are the ones sample_indices picks for that clip (grey level == index).
    for c in range(2):
        expected = tiny_model.prepare_video(frames[sample_indices(30, 8, "center", clip=c, clips=2)])
        assert torch.equal(views[c], expected[0])
    assert not torch.equal(views[0], views[1])


def test_streamed_scoring_equals_the_protocol_across_chunks_and_in_bf16():
    """CosineScorer (the streamed form every plain model and classify --index use) equals the plain
    protocol whatever the chunking; a bf16 matmul stays within the documented bf16 tolerance."""
    from actionclip.model import scoring

    g = torch.Generator().manual_seed(3)
    video, text = torch.randn(37, 2, 32, generator=g), torch.randn(3, 9, 32, generator=g)
    reference = scoring.probabilities(scoring.cosine_logits(video, text, 100.0))
    for chunk in (1, 5, 1024):
        torch.testing.assert_close(scoring.CosineScorer(text, 100.0, chunk=chunk)(video), reference,
                                   atol=1e-6, rtol=0)
    bf16 = scoring.CosineScorer(text, 100.0, compute_dtype=torch.bfloat16, chunk=8)(video)
    assert 0 < (bf16 - reference).abs().max() <= 0.03
