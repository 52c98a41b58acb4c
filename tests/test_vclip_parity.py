"""Parity of ViFi-CLIP, Open-VCLIP and FROSTER with independent restatements of their test forward.

The references below are written in this file from the facts of the original code (their
``trainers/vificlip.py``, ``temporalclip_video_model.py``, ``customize_visiontransformer.py`` and
the ``expand_temporal_view`` branch of their attention function), not from ours:

* the image tower is plain tensor arithmetic, sequence-first as theirs, and the neighbour attention
  is an explicit loop over clips, frames and heads that lists each frame's key blocks (next frame's,
  previous frame's or a block of zeros, its own) as their code concatenates them;
* the text tower is Hugging Face ``transformers``' CLIP (an implementation independent of ours) on
  the same weights, through the name mapping of ``test_parity_clip``;
* scoring is theirs: ViFi-CLIP ``softmax(exp(logit_scale) * cos(mean of frame embeddings, text))``;
  Open-VCLIP/FROSTER every frame's unit embedding against the per-label classifier (the mean of the
  unit embeddings of the label's prompts, normalised), averaged over frames, then the softmax;
* the weights are the ones their test scripts run (:func:`their_test_weights`): Open-VCLIP's
  classifier comes from OpenAI's text tower (built before the checkpoint is loaded: a file's own text
  tower never runs), and its image tower is interpolated with OpenAI's fp16 weights in fp16
  arithmetic (restated with numpy's float16, as PyTorch 1.11, their version, computes it on the
  CPU); FROSTER runs the file as it is. "OpenAI CLIP" here is a random CLIP stored in fp16, as
  OpenAI's archives are.

Random weights, every file layout (released averages, training checkpoints), fp32 <= 1e-4 in
probabilities; bf16 within 0.03 of fp32 (docs/models.md: on these tiny random models the largest
difference over 40 clips was 0.021, against 0.008 for ActionCLIP's, whose tolerance is 0.02; the
softmax at logit scale ~100 turns embedding rounding of ~1e-3 into probability differences of ~1e-2).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import actionclip
from actionclip._dev.vclip_weights import write_openvclip, write_vificlip
from actionclip._dev.weights import SIZES, hf_config, random_clip_state_dict
from actionclip.loading import vclip_families
from actionclip.loading.checkpoints import read_checkpoint

transformers = pytest.importorskip("transformers")
from test_parity_clip import openai_to_hf  # noqa: E402  (the test suite's own OpenAI -> HF mapping)

TOLERANCE = 1e-4
BF16_PROB_TOL = 0.03
LABELS = ["riding a bike", "playing the violin", "Abseiling: descending a rock face on a rope", "juggling balls",
          "swimming"]
# Open-VCLIP's templates as their text_prompt() lists them; FROSTER appends '{}'.
THEIR_TEMPLATES = [
    "a photo of {}.", "a photo of a person {}.", "a photo of a person using {}.", "a photo of a person doing {}.",
    "a photo of a person during {}.", "a photo of a person performing {}.", "a photo of a person practicing {}.",
    "a video of {}.", "a video of a person {}.", "a video of a person using {}.", "a video of a person doing {}.",
    "a video of a person during {}.", "a video of a person performing {}.", "a video of a person practicing {}.",
    "a example of {}.", "a example of a person {}.", "a example of a person using {}.",
    "a example of a person doing {}.", "a example of a person during {}.", "a example of a person performing {}.",
    "a example of a person practicing {}.", "a demonstration of {}.", "a demonstration of a person {}.",
    "a demonstration of a person using {}.", "a demonstration of a person doing {}.",
    "a demonstration of a person during {}.", "a demonstration of a person performing {}.",
    "a demonstration of a person practicing {}.",
]
OPENAI_SEED = 123  # the "OpenAI CLIP" the files were fine-tuned from (a different random CLIP)


# --- references --------------------------------------------------------------------------------------


def _ln(x, sd, name, eps=1e-5):
    return F.layer_norm(x, x.shape[-1:], sd[name + ".weight"], sd[name + ".bias"], eps)


def reference_neighbour_attention(x, w_in, b_in, w_out, b_out, heads, frames):
    """x: [L, B*T, W] sequence-first. Frame t's queries attend to (frame t+1 or L zero keys),
    (frame t-1 or L zero keys) and frame t's own keys, per head; zero keys carry zero values."""
    length, bt, width = x.shape
    dim = width // heads
    wq, wk, wv = w_in.chunk(3)
    bq, bk, bv = b_in.chunk(3)
    out = torch.empty_like(x)
    for clip in range(bt // frames):
        def tokens(t):
            return x[:, clip * frames + t] if 0 <= t < frames else None
        for t in range(frames):
            q = tokens(t) @ wq.T + bq
            blocks_k, blocks_v = [], []
            for s in (t + 1, t - 1, t):
                src = tokens(s)
                blocks_k.append(torch.zeros(length, width) if src is None else src @ wk.T + bk)
                blocks_v.append(torch.zeros(length, width) if src is None else src @ wv.T + bv)
            k, v = torch.cat(blocks_k), torch.cat(blocks_v)
            per_head = []
            for h in range(heads):
                cols = slice(h * dim, (h + 1) * dim)
                scores = (q[:, cols] / math.sqrt(dim)) @ k[:, cols].T
                per_head.append(scores.softmax(dim=-1) @ v[:, cols])
            out[:, clip * frames + t] = torch.cat(per_head, dim=1) @ w_out.T + b_out
    return out


def reference_image_tower(sd, pixels, frames, neighbours):
    """CLIP's image tower on [B*T, 3, R, R] (their VisionTransformer), sequence-first."""
    width, patch = sd["visual.conv1.weight"].shape[0], sd["visual.conv1.weight"].shape[-1]
    heads = width // 64
    x = F.conv2d(pixels, sd["visual.conv1.weight"], stride=patch).flatten(2).permute(0, 2, 1)
    cls = sd["visual.class_embedding"] + torch.zeros(x.shape[0], 1, width)
    x = torch.cat([cls, x], dim=1) + sd["visual.positional_embedding"]
    x = _ln(x, sd, "visual.ln_pre").permute(1, 0, 2)
    layers = len({k.split(".")[3] for k in sd if k.startswith("visual.transformer.resblocks.")})
    for i in range(layers):
        p = f"visual.transformer.resblocks.{i}."
        y = _ln(x, sd, p + "ln_1")
        w = (sd[p + "attn.in_proj_weight"], sd[p + "attn.in_proj_bias"], sd[p + "attn.out_proj.weight"],
             sd[p + "attn.out_proj.bias"])
        if neighbours:
            x = x + reference_neighbour_attention(y, *w, heads, frames)
        else:
            x = x + F.multi_head_attention_forward(y, y, y, width, heads, w[0], w[1], None, None, False, 0.0,
                                                   w[2], w[3], training=False, need_weights=False)[0]
        h = _ln(x, sd, p + "ln_2") @ sd[p + "mlp.c_fc.weight"].T + sd[p + "mlp.c_fc.bias"]
        x = x + (h * torch.sigmoid(1.702 * h)) @ sd[p + "mlp.c_proj.weight"].T + sd[p + "mlp.c_proj.bias"]
    return _ln(x.permute(1, 0, 2)[:, 0], sd, "visual.ln_post") @ sd["visual.proj"]


def reference_text(sd, prompts):
    """transformers' CLIP text tower + projection on the same weights."""
    size = "tiny-L/14" if sd["visual.conv1.weight"].shape[0] == 1024 else "tiny"
    hf = transformers.CLIPModel(transformers.CLIPConfig(**hf_config(SIZES[size]))).eval()
    missing, unexpected = hf.load_state_dict(openai_to_hf({k: v.float() for k, v in sd.items()}), strict=False)
    assert not unexpected and all("position_ids" in k for k in missing)
    tokens = actionclip.tokenize(prompts)
    with torch.no_grad():
        return hf.text_projection(hf.text_model(input_ids=tokens).pooler_output)


def reference_vificlip(sd, pixels, labels):
    """ViFiCLIP.forward + their test softmax: pixels [B, T, 3, R, R] -> [B, L]."""
    b, t = pixels.shape[:2]
    video = reference_image_tower(sd, pixels.reshape(b * t, *pixels.shape[2:]), t, False).view(b, t, -1).mean(1)
    text = reference_text(sd, [f"a photo of a {label}." for label in labels])
    video, text = video / video.norm(dim=-1, keepdim=True), text / text.norm(dim=-1, keepdim=True)
    return (sd["logit_scale"].exp() * video @ text.T).softmax(dim=-1)


def reference_classifier(sd, labels, froster):
    """Their text_prompt() + achieve_csf_matrix(): one unit row per label."""
    templates = THEIR_TEMPLATES + (["{}"] if froster else [])
    prompts = []
    for idx, template in enumerate(templates):
        if froster and idx < len(templates) - 1:
            prompts += [template.format(name.split(":")[0]) + " " + name for name in labels]
        else:
            prompts += [template.format(name) for name in labels]
    text = reference_text(sd, prompts).view(len(templates), len(labels), -1)  # one call: one HF model
    classifier = (text / text.norm(dim=-1, keepdim=True)).mean(0)
    return classifier / classifier.norm(dim=-1, keepdim=True)


def reference_temporal_clip(sd, pixels, classifier):
    """TemporalClipVideo.forward (eval) + softmax: pixels [B, T, 3, R, R] -> [B, L]."""
    b, t = pixels.shape[:2]
    frames = reference_image_tower(sd, pixels.reshape(b * t, *pixels.shape[2:]), t, True)
    frames = frames / frames.norm(dim=-1, keepdim=True)
    pred = sd["logit_scale"].exp() * frames @ classifier.T
    return pred.view(b, t, -1).mean(1).softmax(dim=-1)


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openai_sd():
    """OpenAI's CLIP for the tiny files, in fp16 as OpenAI's archives hold it."""
    return {k: v.half() for k, v in random_clip_state_dict("tiny", seed=OPENAI_SEED).items()}


@pytest.fixture(scope="module")
def openai_l14_sd():
    """The same for the files shaped as L/14 (image width 1024, patch 14: ratio 0.6)."""
    return {k: v.half() for k, v in random_clip_state_dict("tiny-L/14", seed=OPENAI_SEED).items()}


@pytest.fixture(autouse=True)
def _openai_from_memory(monkeypatch, openai_sd, openai_l14_sd):
    """The families fetch OpenAI's weights through the registry; here they are tiny random CLIPs."""
    calls = []

    def fake(clip_sd, why):
        calls.append(why)
        return openai_l14_sd if clip_sd["visual.conv1.weight"].shape[0] == 1024 else openai_sd

    monkeypatch.setattr(vclip_families, "openai_weights", fake)
    return calls


@pytest.fixture(scope="module")
def files(tmp_path_factory, openai_sd):
    root = tmp_path_factory.mktemp("vclip")
    return {
        "vificlip": write_vificlip(root / "vifi.pth", openai_sd, seed=1),
        "openvclip": write_openvclip(root / "openvclip-swa.pth", seed=2),
        "openvclip-training": write_openvclip(root / "openvclip-epoch.pyth", seed=3, training=True),
        "openvclip-l14": write_openvclip(root / "openvclip-l14-swa.pth", size="tiny-L/14", seed=6),
        "openvclip-l14-training": write_openvclip(root / "openvclip-l14-epoch.pyth", size="tiny-L/14", seed=8,
                                                  training=True),
        "froster": write_openvclip(root / "froster-swa.pth", seed=4, froster=True),
        "froster-training": write_openvclip(root / "froster-epoch.pyth", seed=5, froster=True, training=True),
        "froster-l14": write_openvclip(root / "froster-l14-swa.pth", size="tiny-L/14", seed=9, froster=True),
    }


def _pixels(frames, seed=0, batch=2, side=32):
    return torch.randn(batch, frames, 3, side, side, generator=torch.Generator().manual_seed(seed))


def _ours(model, pixels, labels=LABELS):
    with torch.no_grad():
        return model.probabilities(model.encode_video(pixels), model.encode_labels(labels)).float()


def their_test_weights(path, openai16):
    """The CLIP weights their test script runs on a file (``openai16``: OpenAI's, fp16), restated
    from ``tools/test_net.py`` (PyTorch 1.11) and ``TemporalClipVideo``:

    * Open-VCLIP: the classifier is built from OpenAI's text tower when the model is constructed,
      before the file is loaded, so text = OpenAI's (fp32, the model's dtype), whatever the file
      holds; every other weight is ``clip_ori_state[k] * ratio + file[k] * (1 - ratio)`` with
      ``clip_ori_state`` fp16: the ratio rounded to fp16, the product an fp16 product (numpy's
      float16 arithmetic does exactly that), the file's part fp32, the sum fp32. Ratio 0.6 for
      L/14, 0.5 otherwise.
    * FROSTER (its state holds the ``projector_`` heads): the file as it is, text included."""
    state = torch.load(path, weights_only=True)["model_state"]
    sd = {k[len("model."):]: v.float() for k, v in state.items() if k.startswith("model.")}
    if any(k.startswith("projector_") for k in state):
        return sd
    ratio = 0.6 if sd["visual.conv1.weight"].shape[0] == 1024 else 0.5
    out = {}
    for key, mine in sd.items():
        if key.startswith("visual.") or key == "logit_scale":
            mixed = openai16[key].numpy() * np.float16(ratio) + mine.numpy() * np.float32(1 - ratio)
            out[key] = torch.from_numpy(np.asarray(mixed, dtype=np.float32))
        else:
            out[key] = openai16[key].float()
    return out


# --- tests ------------------------------------------------------------------------------------------


def test_vificlip_matches_its_forward(files, openai_sd, _openai_from_memory):
    model = actionclip.load(files["vificlip"], dtype="fp32")
    assert _openai_from_memory, "the token embedding must come from OpenAI's weights"
    sd = {k: v.float() for k, v in read_checkpoint(files["vificlip"]).clip_state_dict.items()}
    sd["token_embedding.weight"] = openai_sd["token_embedding.weight"]
    pixels = _pixels(model.num_frames)
    ours, theirs = _ours(model, pixels), reference_vificlip(sd, pixels, LABELS)
    assert model.num_frames == 32 and ours.shape == theirs.shape == (2, len(LABELS))
    assert (ours - theirs).abs().max().item() <= TOLERANCE
    assert theirs.max() - theirs.min() > 0.05  # a non-degenerate ranking


def test_vificlip_is_our_clip_path_with_its_normalisation_and_template(files, tmp_path):
    """ViFi-CLIP is CLIP + mean pooling: its weights saved as an OpenAI CLIP file and loaded as a bare
    CLIP model give the same probabilities on ViFi's pixels (ImageNet mean/std) with its template."""
    vifi = actionclip.load(files["vificlip"], dtype="fp32")
    assert type(vifi) is actionclip.ActionCLIP and vifi.fusion_type == "meanP"
    assert vifi.templates == ["a photo of a {}."]
    prep = vifi.config.preprocessing
    # mmcv's img_norm_cfg in ViFi-CLIP's pipeline, on the 0..255 scale; short side 256, crop 224
    assert prep.mean == pytest.approx([123.675 / 255, 116.28 / 255, 103.53 / 255])
    assert prep.std == pytest.approx([58.395 / 255, 57.12 / 255, 57.375 / 255])
    assert (prep.resize_ratio * 224, prep.interpolation) == (pytest.approx(256), "bilinear")
    torch.save(dict(vifi.clip.openai_state_dict()), tmp_path / "vifi-as-openai.pt")
    clip = actionclip.load(tmp_path / "vifi-as-openai.pt", dtype="fp32", frames=32)
    frames = (torch.rand(40, 48, 64, 3, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8).numpy()
    pixels = vifi.prepare_video(frames)
    with torch.no_grad():
        expected = clip.probabilities(clip.encode_video(pixels), clip.encode_labels(LABELS, "a photo of a {}."))[0]
    got = dict(vifi.classify(frames, LABELS))
    assert max(abs(got[label] - p) for label, p in zip(LABELS, expected.tolist())) <= TOLERANCE


def _openai_for(sd, openai_sd, openai_l14_sd):
    return openai_l14_sd if sd["visual.conv1.weight"].shape[0] == 1024 else openai_sd


@pytest.mark.parametrize("fmt", ["openvclip", "openvclip-training", "openvclip-l14", "openvclip-l14-training",
                                 "froster", "froster-training", "froster-l14"])
def test_neighbour_attention_models_match_their_forward(files, openai_sd, openai_l14_sd, fmt):
    froster = fmt.startswith("froster")
    model = actionclip.load(files[fmt], dtype="fp32")
    assert model.family == ("froster" if froster else "openvclip") and not model.frame_independent
    sd = their_test_weights(files[fmt], _openai_for(model.clip.openai_state_dict(), openai_sd, openai_l14_sd))
    classifier = reference_classifier(sd, LABELS, froster)
    with torch.no_grad():
        labels = model.encode_labels(LABELS)
    side = sd["visual.conv1.weight"].shape[-1] * round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    for frames in (8, 3):  # the released frame count, and another clip length
        pixels = _pixels(frames, seed=frames, side=side)
        with torch.no_grad():
            ours = model.probabilities(model.encode_video(pixels), labels)
        theirs = reference_temporal_clip(sd, pixels, classifier)
        assert (ours - theirs).abs().max().item() <= TOLERANCE, fmt
        assert theirs.max() - theirs.min() > 0.05


@pytest.mark.parametrize("fmt", ["openvclip", "openvclip-l14", "openvclip-l14-training", "froster-l14"])
def test_weights_are_the_ones_their_test_script_runs(files, openai_sd, openai_l14_sd, fmt):
    """Bit for bit: Open-VCLIP's image tower interpolated in fp16 arithmetic (at L/14's ratio 0.6
    an fp32 product, or a ratio kept in fp32 as newer PyTorch does, differs in the last bit of
    most weights), its text tower OpenAI's; FROSTER's the file's."""
    model = actionclip.load(files[fmt], dtype="fp32")
    got = model.clip.openai_state_dict()
    openai16 = _openai_for(got, openai_sd, openai_l14_sd)
    expected = their_test_weights(files[fmt], openai16)
    assert set(expected) <= set(got)
    wrong = [k for k in expected if not torch.equal(got[k], expected[k])]
    assert not wrong, f"{fmt}: {len(wrong)} weights differ from their test script's, e.g. {wrong[:3]}"
    text = "transformer.resblocks.0.attn.in_proj_weight"
    from_file = torch.load(files[fmt], weights_only=True)["model_state"]["model." + text]
    if fmt.startswith("froster"):
        assert torch.equal(got[text], from_file)
    else:
        assert torch.equal(got[text], openai16[text].float()) and not torch.equal(got[text], from_file)


def _with_other_text(path, out):
    """``path``'s file with its text tower (and only it) changed, saved the same way."""
    payload = torch.load(path, weights_only=True)
    generator = torch.Generator().manual_seed(99)
    for key, value in payload["model_state"].items():
        if key.startswith(("model.transformer.", "model.ln_final.")) or key in ("model.text_projection",
                                                                               "model.token_embedding.weight"):
            payload["model_state"][key] = value + torch.randn(value.shape, generator=generator) * 0.05
    torch.save(payload, out)
    return out


@pytest.mark.parametrize("fmt", ["openvclip-l14", "froster-l14"])
def test_open_vclip_ignores_the_files_text_tower_froster_does_not(files, tmp_path, fmt):
    """Open-VCLIP's test builds its classifier from OpenAI's text tower before loading the file, so
    two files that differ only in their text towers score the same; FROSTER recomputes its
    classifier from the loaded model, so they do not."""
    other = _with_other_text(files[fmt], tmp_path / "other-text.pth")
    pixels = _pixels(8, side=28)
    first = _ours(actionclip.load(files[fmt], dtype="fp32"), pixels)
    second = _ours(actionclip.load(other, dtype="fp32"), pixels)
    if fmt.startswith("froster"):
        assert (first - second).abs().max() > 1e-3
    else:
        assert torch.equal(first, second)


def test_neighbours_reach_one_frame_further_per_block(files):
    """A frame's tokens see the previous and next frame in every block: with the tiny model's 2
    blocks, changing frame 3 of 5 moves frames 1-4 and leaves frame 0; and a one-frame clip attends
    to the two blocks of zeros, so it is not the plain CLIP embedding of that frame."""
    from actionclip.model.neighbours import clip_frames

    model = actionclip.load(files["froster"], dtype="fp32")
    assert len(model.clip.visual.transformer.resblocks) == 2
    pixels = _pixels(5, batch=1)[0]
    moved = pixels.clone()
    moved[3] += 1.0
    with torch.no_grad(), clip_frames(5):
        change = (model.clip.visual(pixels) - model.clip.visual(moved)).abs().amax(dim=-1)
    assert change[0] == 0 and (change[1:] > 1e-4).all(), change
    sd = their_test_weights(files["froster"], None)
    alone = F.normalize(reference_image_tower(sd, pixels[:1], 1, True), dim=-1)
    plain = F.normalize(reference_image_tower(sd, pixels[:1], 1, False), dim=-1)
    with torch.no_grad():
        ours = model.encode_video(pixels[None, :1])
    assert (ours - alone).abs().max() <= TOLERANCE
    assert (alone - plain).abs().max() > 1e-3


def test_open_vclip_interpolates_released_files_only(files, openai_sd, tmp_path, _openai_from_memory):
    released = actionclip.load(files["openvclip"], dtype="fp32")
    assert any("interpolated" in why and "text tower" in why for why in _openai_from_memory)
    # saved by actionclip, the model holds what it ran with: reloading does not interpolate again
    from actionclip.loading.checkpoints import save_actionclip_checkpoint

    _openai_from_memory.clear()
    saved = save_actionclip_checkpoint(released, tmp_path / "openvclip-interpolated.pt")
    again = actionclip.load(saved, dtype="fp32")
    assert type(again) is type(released) and not _openai_from_memory
    pixels = _pixels(8)
    assert torch.equal(_ours(again, pixels), _ours(released, pixels))
    # FROSTER's test script does not interpolate
    froster = actionclip.load(files["froster"], dtype="fp32")
    assert not _openai_from_memory
    assert torch.equal(froster.clip.openai_state_dict()["visual.proj"], read_checkpoint(files["froster"]).clip_state_dict["visual.proj"])


@pytest.mark.parametrize("fmt", ["vificlip", "openvclip", "froster"])
def test_bf16_within_documented_tolerance(files, fmt):
    fp32 = actionclip.load(files[fmt], dtype="fp32")
    bf16 = actionclip.load(files[fmt], dtype="bf16")
    pixels = _pixels(fp32.num_frames, seed=7, batch=4)
    diff = (_ours(fp32, pixels) - _ours(bf16, pixels)).abs().max().item()
    assert 0 < diff <= BF16_PROB_TOL, diff
