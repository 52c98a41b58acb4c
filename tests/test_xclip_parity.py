"""X-CLIP equals transformers' XCLIPModel on random weights, in both published layouts.

The reference for a Hugging Face folder is ``XCLIPModel.from_pretrained`` on the same folder. The
reference for an original release file is an ``XCLIPModel`` given the file's tensors, renamed by
:func:`original_to_hf` below (written here from the release's and transformers' key names,
independently of the loader's own renaming, which goes the other way).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import actionclip
from actionclip._dev.xclip_weights import XCLIP_SIZES, hf_xclip_config, write_xclip_checkpoint, yacs_stand_in
from actionclip.model.scoring import VideoFeatures, map_features
from actionclip.text.tokenizer import tokenize

transformers = pytest.importorskip("transformers")

LABELS = ["playing sports", "eating spaghetti", "go shopping", "walking the dog", "swimming backstroke"]
# bf16 against the fp32 reference, as measured on these tiny models (docs/models.md): the largest
# probability difference seen is ~0.02 (it grows where random weights make the softmax peaked).
BF16_PROB_TOL = 0.05


def original_to_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An original X-CLIP state dict in transformers' names."""
    out = {}
    for key, value in sd.items():
        name = key
        if "attn.in_proj_" in key:
            stem, kind = key.rsplit(".in_proj_", 1)
            head = "message_attn" if stem.endswith("message_attn") else "self_attn"
            stem = stem[: -len("message_attn")] + head if head == "message_attn" else stem[: -len("attn")] + head
            stem = _rename(stem)
            for part, chunk in zip("qkv", value.chunk(3)):
                out[f"{stem}.{part}_proj.{kind}"] = chunk
            continue
        name = _rename(name)
        if name.endswith(".attn.out_proj.weight") or name.endswith(".attn.out_proj.bias"):
            if ".message_attn." not in name:
                name = name.replace(".attn.out_proj.", ".self_attn.out_proj.")
        if name in ("visual_projection.weight", "text_projection.weight"):
            value = value.t()
        out[name] = value
    return out


def _rename(name: str) -> str:
    exact = {
        "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
        "positional_embedding": "text_model.embeddings.position_embedding.weight",
        "visual.class_embedding": "vision_model.embeddings.class_embedding",
        "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
        "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
        "visual.proj": "visual_projection.weight",
        "text_projection": "text_projection.weight",
        "prompts_visual_proj": "prompts_visual_projection",
        "mit.positional_embedding": "mit.position_embedding",
    }
    if name in exact:
        return exact[name]
    for old, new in (("visual.transformer.resblocks.", "vision_model.encoder.layers."),
                     ("transformer.resblocks.", "text_model.encoder.layers."),
                     ("mit.resblocks.", "mit.encoder.layers."),
                     ("visual.ln_pre.", "vision_model.pre_layernorm."),
                     ("visual.ln_post.", "vision_model.post_layernorm."),
                     ("ln_final.", "text_model.final_layer_norm."),
                     ("prompts_visual_ln.", "prompts_visual_layernorm."),
                     ("prompts_generator.norm.", "prompts_generator.layernorm.")):
        if name.startswith(old):
            name = new + name[len(old):]
    for old, new in (("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("c_fc", "fc1"), ("c_proj", "fc2")):
        name = name.replace(f".{old}.", f".{new}.")
    return name


def reference_from_original(path: Path, size: str, frames: int):
    from transformers import XCLIPConfig, XCLIPModel

    with yacs_stand_in():  # our own test file; its pickled config names yacs.config.CfgNode
        sd = torch.load(path, map_location="cpu", weights_only=False)["model"]
    ref = XCLIPModel(XCLIPConfig(**hf_xclip_config(replace(XCLIP_SIZES[size], frames=frames))))
    ref.load_state_dict({k: v.float() for k, v in original_to_hf(sd).items()}, strict=True)
    return ref.eval()


def reference_outputs(ref, pixels: torch.Tensor, labels=LABELS):
    with torch.no_grad():
        return ref(input_ids=tokenize(labels), pixel_values=pixels)


def ours_outputs(model, pixels: torch.Tensor, labels=LABELS):
    with torch.no_grad():
        features = model.encode_video(pixels)
        label_features = model.encode_labels(labels)
        probs = model.probabilities(features, label_features)
        text = model.xclip.video_text(label_features[0], features.tokens)
    return features, probs, text


CASES = [  # (format, size, frames)
    ("xclip", "tiny", 8),
    ("xclip", "tiny-16", 16),
    ("hf-xclip", "tiny-16", 8),
    ("hf-xclip", "tiny", 16),
    ("hf-xclip-bin", "tiny", 8),
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("xclip")
    return {case: write_xclip_checkpoint(root / "-".join(map(str, case)), case[0], size=case[1], frames=case[2],
                                         seed=7, training_state=case[0] == "xclip")
            for case in CASES}


def _reference(checkpoints, case):
    fmt, size, frames = case
    if fmt == "xclip":
        return reference_from_original(checkpoints[case], size, frames)
    from transformers import XCLIPModel

    return XCLIPModel.from_pretrained(checkpoints[case]).eval()


def _pixels(model, frames: int, batch: int = 3) -> torch.Tensor:
    r = model.input_resolution
    return torch.randn(batch, frames, 3, r, r, generator=torch.Generator().manual_seed(frames))


@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_fp32_equals_transformers(checkpoints, case):
    fmt, size, frames = case
    model = actionclip.load(checkpoints[case], dtype="fp32")
    assert model.source_format == ("xclip" if fmt == "xclip" else "hf-xclip")
    assert model.num_frames == frames and not model.frame_independent
    pixels = _pixels(model, frames)
    ref = reference_outputs(_reference(checkpoints, case), pixels)
    features, probs, text = ours_outputs(model, pixels)
    expected = ref.logits_per_video.softmax(dim=-1)
    assert float((probs - expected).abs().max()) <= 1e-4
    # The logits too (the softmax of random weights at temperature 100 can be peaked), and they
    # differ between the random videos, so a mix-up of videos would show.
    with torch.no_grad():
        logits = model.logits(features, model.encode_labels(LABELS))[:, 0, 0]
    assert float((logits - ref.logits_per_video).abs().max()) <= 1e-3
    assert float((ref.logits_per_video[0] - ref.logits_per_video[1]).abs().max()) > 0.1
    assert torch.allclose(F.normalize(features.embedding, dim=-1), ref.video_embeds, atol=1e-5)
    assert torch.allclose(F.normalize(text, dim=-1), ref.text_embeds, atol=1e-5)


def test_bf16_within_documented_tolerance(checkpoints):
    case = ("hf-xclip", "tiny-16", 8)
    model = actionclip.load(checkpoints[case], dtype="bf16")
    assert model.dtype == torch.bfloat16
    pixels = _pixels(model, 8)
    expected = reference_outputs(_reference(checkpoints, case), pixels).logits_per_video.softmax(dim=-1)
    _, probs, _ = ours_outputs(model, pixels)
    assert float((probs - expected).abs().max()) <= BF16_PROB_TOL


def test_multi_view_features_score_as_the_mean_over_views(checkpoints):
    """Views [B, V, ...]: the generator runs per view, the softmax is averaged over views."""
    case = ("xclip", "tiny", 8)
    model = actionclip.load(checkpoints[case], dtype="fp32")
    ref = _reference(checkpoints, case)
    pixels = _pixels(model, 8, batch=4)  # 2 videos x 2 views
    features = map_features(model.encode_video(pixels), lambda t, k: t.reshape(2, 2, *t.shape[t.ndim - k:]))
    probs = model.probabilities(features, model.encode_labels(LABELS))
    expected = reference_outputs(ref, pixels).logits_per_video.softmax(dim=-1).view(2, 2, -1).mean(dim=1)
    assert float((probs - expected).abs().max()) <= 1e-4


def test_video_features_survive_a_numpy_round_trip(checkpoints):
    """What an index stores: each field to numpy and back scores exactly as the live features."""
    model = actionclip.load(checkpoints[("xclip", "tiny", 8)], dtype="fp32")
    features = model.encode_video(_pixels(model, 8))
    stored = map_features(features, lambda t, _: model.ops.to_numpy(t))
    assert isinstance(stored, VideoFeatures) and isinstance(stored.tokens, np.ndarray)
    restored = map_features(stored, lambda a, _: torch.from_numpy(a))
    labels = model.encode_labels(LABELS)
    assert torch.equal(model.probabilities(restored, labels), model.probabilities(features, labels))
    # numpy arrays are accepted as they are, too
    assert torch.equal(model.probabilities(stored, labels), model.probabilities(features, labels))


def test_release_file_with_training_state_and_fp16_weights(tmp_path):
    """The release files pickle a yacs config beside the weights (refused by weights_only loading, read
    as inert data by ours); fp16 weights load as fp32 and still equal the reference built from them."""
    import pickle

    from actionclip.loading.checkpoints import read_checkpoint

    path = write_xclip_checkpoint(tmp_path / "k400_32_8.pth", "xclip", fp16=True, training_state=True, seed=3)
    with yacs_stand_in(), pytest.raises(pickle.UnpicklingError, match="yacs"):
        torch.load(path, map_location="cpu", weights_only=True)
    ckpt = read_checkpoint(path)
    assert (ckpt.format, ckpt.family, ckpt.num_frames, ckpt.meta["epoch"]) == ("xclip", "xclip", 8, 29)
    model = actionclip.load(path, dtype="fp32")
    assert model.dtype == torch.float32
    pixels = _pixels(model, 8)
    expected = reference_outputs(reference_from_original(path, "tiny", 8), pixels).logits_per_video.softmax(-1)
    assert float((ours_outputs(model, pixels)[1] - expected).abs().max()) <= 1e-4


def test_generator_chunks_give_the_same_logits(checkpoints, monkeypatch):
    """Prompts are independent in the generator: scoring them in small chunks changes nothing."""
    from actionclip.families.xclip import model as xclip

    model = actionclip.load(checkpoints[("xclip", "tiny", 8)], dtype="fp32")
    features = model.encode_video(_pixels(model, 8))
    labels = model.encode_labels(LABELS, templates=["{}", "a video of {}"])
    whole = model.logits(features, labels)
    monkeypatch.setattr(xclip, "_GENERATOR_ROWS", 4)  # 3 videos: one prompt per call
    torch.testing.assert_close(model.logits(features, labels), whole, atol=1e-5, rtol=1e-5)
    assert whole.shape == (3, 1, 2, len(LABELS))
