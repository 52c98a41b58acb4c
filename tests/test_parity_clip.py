"""Parity of the CLIP encoders with an independent implementation: Hugging Face ``CLIPModel``.

For every checkpoint format a user can bring, our model is loaded through the public API and its
image and text embeddings are compared with ``transformers`` on the same weights. For the "hf" format
the reference reads the folder ``transformers`` itself wrote; for the others the test converts the
OpenAI-named weights to Hugging Face names with its own code below (not the library's).
"""

from __future__ import annotations

import pytest
import torch

import actionclip
from actionclip._dev.weights import SIZES, hf_config, write_checkpoint
from actionclip.loading.checkpoints import read_checkpoint

transformers = pytest.importorskip("transformers")

TOLERANCE = 1e-4
PROMPTS = [
    "a photo of action running",
    "The woman is playing the violin",
    "Can you recognize the action of skydiving?",
    "",
    "ßüñ 中文 🙂 & punctuation!!",
    "word " * 120,  # longer than the context: truncated, end token kept
]


def openai_to_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI CLIP names -> transformers CLIPModel names (the test's own mapping)."""
    out = {
        "vision_model.embeddings.class_embedding": sd["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": sd["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": sd["visual.positional_embedding"],
        "vision_model.pre_layrnorm.weight": sd["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": sd["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": sd["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": sd["visual.ln_post.bias"],
        "visual_projection.weight": sd["visual.proj"].T,
        "text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": sd["positional_embedding"],
        "text_model.final_layer_norm.weight": sd["ln_final.weight"],
        "text_model.final_layer_norm.bias": sd["ln_final.bias"],
        "text_projection.weight": sd["text_projection"].T,
        "logit_scale": sd["logit_scale"],
    }
    for ours, theirs in (("visual.transformer.resblocks.", "vision_model.encoder.layers."),
                         ("transformer.resblocks.", "text_model.encoder.layers.")):
        layers = {k[len(ours):].split(".")[0] for k in sd if k.startswith(ours)}
        for i in layers:
            a, b = f"{ours}{i}.", f"{theirs}{i}."
            q, k, v = sd[a + "attn.in_proj_weight"].chunk(3)
            qb, kb, vb = sd[a + "attn.in_proj_bias"].chunk(3)
            out.update({
                b + "self_attn.q_proj.weight": q, b + "self_attn.k_proj.weight": k, b + "self_attn.v_proj.weight": v,
                b + "self_attn.q_proj.bias": qb, b + "self_attn.k_proj.bias": kb, b + "self_attn.v_proj.bias": vb,
                b + "self_attn.out_proj.weight": sd[a + "attn.out_proj.weight"],
                b + "self_attn.out_proj.bias": sd[a + "attn.out_proj.bias"],
                b + "layer_norm1.weight": sd[a + "ln_1.weight"], b + "layer_norm1.bias": sd[a + "ln_1.bias"],
                b + "layer_norm2.weight": sd[a + "ln_2.weight"], b + "layer_norm2.bias": sd[a + "ln_2.bias"],
                b + "mlp.fc1.weight": sd[a + "mlp.c_fc.weight"], b + "mlp.fc1.bias": sd[a + "mlp.c_fc.bias"],
                b + "mlp.fc2.weight": sd[a + "mlp.c_proj.weight"], b + "mlp.fc2.bias": sd[a + "mlp.c_proj.bias"],
            })
    return {k: v.float() for k, v in out.items()}


def reference_model(path, fmt: str):
    if fmt == "hf":
        return transformers.CLIPModel.from_pretrained(str(path)).eval()
    model = transformers.CLIPModel(transformers.CLIPConfig(**hf_config(SIZES["tiny"]))).eval()
    missing, unexpected = model.load_state_dict(openai_to_hf(read_checkpoint(path).clip_state_dict), strict=False)
    assert not unexpected and all("position_ids" in k for k in missing), (missing, unexpected)
    return model


def reference_image(model, pixels):
    return model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)


def reference_text(model, tokens):
    return model.text_projection(model.text_model(input_ids=tokens).pooler_output)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    return {
        "actionclip": write_checkpoint(root / "actionclip.pt", "actionclip", seed=1),
        "actionclip-fp16": write_checkpoint(root / "actionclip16.pt", "actionclip", seed=2, fp16=True),
        "mmaction2": write_checkpoint(root / "mmaction2.pth", "mmaction2", seed=3),
        "openai": write_checkpoint(root / "openai.pt", "openai", seed=4),
        "openai-jit": write_checkpoint(root / "openai-jit.pt", "openai-jit", seed=5),
        "hf": write_checkpoint(root / "hf", "hf", seed=6),
    }


@pytest.mark.parametrize("fmt", ["actionclip", "actionclip-fp16", "mmaction2", "openai", "openai-jit", "hf"])
def test_image_and_text_embeddings_match_transformers(checkpoints, fmt):
    path = checkpoints[fmt]
    ours = actionclip.load(path, dtype="fp32")
    reference = reference_model(path, fmt.replace("-fp16", ""))
    torch.manual_seed(0)
    pixels = torch.randn(5, 3, 32, 32)
    tokens = actionclip.tokenize(PROMPTS)
    with torch.no_grad():
        image_ours, image_ref = ours.encode_image(pixels), reference_image(reference, pixels)
        text_ours, text_ref = ours.encode_tokens(tokens), reference_text(reference, tokens)
        text_by_string = ours.encode_text(PROMPTS)
    assert image_ours.shape == image_ref.shape == (5, 64)
    assert (image_ours - image_ref).abs().max().item() <= TOLERANCE
    assert (text_ours - text_ref).abs().max().item() <= TOLERANCE
    assert torch.equal(text_by_string, text_ours)
    # The embeddings are not degenerate (a model of zeros would pass the comparisons above).
    assert image_ours.std() > 1e-3 and text_ours.std() > 1e-3
    assert torch.cdist(text_ours, text_ours).triu(1).max() > 1e-2


@pytest.mark.parametrize("fmt", ["actionclip", "mmaction2", "openai", "openai-jit", "hf"])
def test_formats_are_detected(checkpoints, fmt):
    loaded = read_checkpoint(checkpoints[fmt])
    expected_kind = "Transf" if fmt in ("actionclip", "mmaction2") else "meanP"
    assert loaded.format == fmt.replace("-jit", "")
    assert loaded.fusion_type == expected_kind
    model = actionclip.load(checkpoints[fmt], dtype="fp32")
    assert model.fusion_type == expected_kind and model.num_frames == 8
    assert model.input_resolution == 32 and model.embed_dim == 64 and model.context_length == 77


def test_architecture_is_inferred_from_shapes(checkpoints):
    cfg = actionclip.load(checkpoints["openai"], dtype="fp32").clip.config
    assert (cfg.vision_width, cfg.vision_layers, cfg.vision_heads, cfg.vision_patch_size) == (128, 2, 2, 8)
    assert (cfg.text_width, cfg.text_layers, cfg.text_heads, cfg.vocab_size) == (128, 2, 2, 49408)


def test_logit_scale_is_clips_temperature_capped_at_100(checkpoints):
    model = actionclip.load(checkpoints["actionclip"], dtype="fp32")
    assert model.logit_scale.item() == pytest.approx(100.0, abs=1e-3)


@pytest.mark.slow
@pytest.mark.heavy
def test_full_size_b32_loads_and_runs(tmp_path):
    import resource

    path = write_checkpoint(tmp_path / "b32.pt", "actionclip", size="B/32")
    assert 640e6 < path.stat().st_size < 720e6  # 151M CLIP + 19M Transf head parameters, fp32
    model = actionclip.load(path, dtype="fp32")
    n_params = sum(p.numel() for p in model.parameters())
    assert 168e6 < n_params < 172e6
    cfg = model.clip.config
    assert (cfg.image_resolution, cfg.vision_patch_size, cfg.vision_width, cfg.embed_dim) == (224, 32, 768, 512)
    with torch.inference_mode():
        video = model.encode_video(torch.randn(1, 8, 3, 224, 224))
        text = model.encode_text(["a photo of action running"])
    assert video.shape == (1, 512) and text.shape == (1, 512)
    assert torch.isfinite(video).all() and torch.isfinite(text).all()
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    assert peak_gib < 6, f"peak RSS {peak_gib:.1f} GiB"
