"""The inference fast path (actionclip.model.fastpath) gives the plain path's numbers and stays out of training.

The folded-QuickGELU MLP runs everywhere (fp32 here); the oneDNN-packed bf16 blocks only where this
CPU runs bf16 natively, so those tests skip elsewhere (CI machines without AMX/AVX512-BF16).
"""

from __future__ import annotations

import contextlib

import pytest
import torch

import actionclip
from actionclip.model import fastpath
from actionclip.text.tokenizer import tokenize

needs_packing = pytest.mark.skipif(not fastpath.can_prepack_bf16(),
                                   reason="this CPU has no native bf16 for oneDNN's packed linear")


@pytest.fixture()
def model(tiny_checkpoint):
    return actionclip.load(tiny_checkpoint, dtype="fp32")  # our own copy: tests change its weights


@pytest.fixture()
def count_fast_blocks(monkeypatch):
    calls = []
    real = fastpath.block_forward

    def spy(block, x, causal):
        calls.append(causal)
        return real(block, x, causal)

    monkeypatch.setattr(fastpath, "block_forward", spy)
    return calls


def _towers(model, images, tokens):
    return model.clip.visual(images.to(model.dtype)).float(), model.encode_tokens(tokens).float()


def _plain(monkeypatch, fn):
    monkeypatch.setenv("ACTIONCLIP_FASTPATH", "0")
    try:
        return fn()
    finally:
        monkeypatch.delenv("ACTIONCLIP_FASTPATH")


def test_folded_mlp_matches_plain_path_in_fp32(model, monkeypatch, count_fast_blocks):
    torch.manual_seed(0)
    images = torch.randn(4, 3, model.clip.visual.input_resolution, model.clip.visual.input_resolution)
    tokens = tokenize(["a photo of action running", "The woman is sitting"])
    with torch.inference_mode():
        plain = _plain(monkeypatch, lambda: _towers(model, images, tokens))
        assert count_fast_blocks == []
        fast = _towers(model, images, tokens)
        video = torch.randn(2, model.num_frames, *images.shape[1:])
        fused_fast = model.encode_video(video)
        fused_plain = _plain(monkeypatch, lambda: model.encode_video(video))
    assert False in count_fast_blocks and True in count_fast_blocks  # image and causal text blocks ran fast
    for a, b in zip(fast, plain):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused_fast, fused_plain, atol=1e-5, rtol=1e-5)


def test_autograd_takes_the_plain_path_and_trains(model, count_fast_blocks):
    images = torch.randn(2, 3, model.clip.visual.input_resolution, model.clip.visual.input_resolution)
    out = model.clip.visual(images)
    out.square().sum().backward()
    assert count_fast_blocks == []
    grad = model.clip.visual.transformer.resblocks[0].mlp.c_fc.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_fast_path_leaves_inputs_and_state_dict_alone(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 5, model.clip.visual.transformer.width)
    kept = x.clone()
    with torch.no_grad():
        model.clip.visual.transformer(x)
    torch.testing.assert_close(x, kept, atol=0, rtol=0)
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)


@needs_packing
def test_packed_bf16_is_as_accurate_as_plain_bf16(tiny_checkpoint, monkeypatch):
    torch.manual_seed(1)
    reference = actionclip.load(tiny_checkpoint, dtype="fp32")
    model = actionclip.load(tiny_checkpoint, dtype="bf16")
    images = torch.randn(64, 3, model.clip.visual.input_resolution, model.clip.visual.input_resolution)
    tokens = tokenize([t.format(a) for t in ("a photo of action {}", "The woman is {}", "{}", "Human action of {}")
                       for a in ("running", "sitting", "swimming", "playing the violin")])
    with torch.inference_mode():
        exact = _towers(reference, images, tokens)
        plain = _plain(monkeypatch, lambda: _towers(model, images, tokens))
        packed = _towers(model, images, tokens)
        block = model.clip.visual.transformer.resblocks[0]
        assert block.__dict__.get(fastpath._CACHE_ATTR) is not None  # the packed weights were used
    for e, p, q in zip(exact, plain, packed):
        # The same maths at the same precision: the packed path may round differently, not worse.
        # (Mean over 64 images / 16 prompts: a max over a few is too noisy to tell the two apart.)
        plain_err = (p - e).abs().mean().item()
        packed_err = (q - e).abs().mean().item()
        assert packed_err <= 1.5 * plain_err, (packed_err, plain_err)
        assert torch.nn.functional.cosine_similarity(q, e).min() > 0.999


@needs_packing
@pytest.mark.parametrize(("rows", "weight"), [(7, "mlp.c_proj.weight"), (7, "attn.out_proj.weight"),
                                              (fastpath._FEW_ROWS + 1, "attn.out_proj.weight")])
def test_packed_weights_follow_weight_changes(tiny_checkpoint, monkeypatch, rows, weight):
    model = actionclip.load(tiny_checkpoint, dtype="bf16")
    x = torch.randn(1, rows, model.clip.visual.transformer.width, dtype=torch.bfloat16)
    tower = model.clip.visual.transformer
    with torch.inference_mode():
        first = tower(x)
    with torch.no_grad():
        tower.resblocks[-1].get_parameter(weight).mul_(3)
    with torch.inference_mode():
        changed = tower(x)
        plain = _plain(monkeypatch, lambda: tower(x))
    assert not torch.allclose(first, changed)
    torch.testing.assert_close(changed.float(), plain.float(), atol=0.05, rtol=0.02)


_MODES = {"inference_mode": torch.inference_mode, "no_grad": torch.no_grad, "neither": contextlib.nullcontext}


@pytest.mark.heavy
def test_load_and_run_under_any_grad_mode_in_fp32_and_bf16(tiny_checkpoint):
    """Issue 9's defect: a model loaded in bf16 inside torch.inference_mode() crashed on its first
    encode_video (the fast path read an inference tensor's version counter), and one loaded there in
    any dtype could not run with autograd on. Every combination must work and agree."""
    pixels = torch.randn(2, 8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    frames = torch.randint(0, 256, (12, 40, 48, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    results: dict[tuple[str, str, str], torch.Tensor] = {}
    ranks: dict[tuple[str, str, str], list[str]] = {}
    for dtype in ("fp32", "bf16"):
        for load_mode, load_ctx in _MODES.items():
            with load_ctx():
                model = actionclip.load(tiny_checkpoint, device="cpu", dtype=dtype)
            for run_mode, run_ctx in _MODES.items():
                with run_ctx():
                    results[dtype, load_mode, run_mode] = model.encode_video(pixels).detach().float()
                    ranks[dtype, load_mode, run_mode] = [l for l, _ in model.classify(frames, ["a", "b", "c"])]
    reference = results["fp32", "neither", "neither"]
    for key, value in results.items():
        tolerance = 1e-5 if key[0] == "fp32" else 0.05 * reference.abs().max().item()
        torch.testing.assert_close(value, reference, atol=tolerance, rtol=0, msg=str(key))
    assert len({tuple(r) for k, r in ranks.items() if k[0] == "fp32"}) == 1


def test_weights_cast_inside_inference_mode_still_take_the_fast_path(tiny_checkpoint, monkeypatch):
    """Weights made inside inference_mode (a cast there) are inference tensors with no version
    counter: the packed-weight cache keys on their storage, and invalidate() follows in-place edits."""
    model = actionclip.load(tiny_checkpoint, device="cpu", dtype="fp32")
    pixels = torch.randn(1, 8, 3, 32, 32)
    with torch.inference_mode():
        model = model.to(torch.bfloat16)
        first = model.encode_video(pixels)
        block = model.clip.visual.transformer.resblocks[0]
        block.mlp.c_fc.weight.mul_(0)  # an in-place edit the cache cannot see for inference tensors
        fastpath.invalidate(model)
        second = model.encode_video(pixels)
    assert block.mlp.c_fc.weight.is_inference()
    assert not torch.equal(first, second)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_patch_tokens_equal_the_patch_convolution(dtype):
    """The patch embedding as one matmul over unfolded patches gives the convolution's tokens, also
    for an input that is not contiguous (a channels-last batch)."""
    torch.manual_seed(2)
    conv = torch.nn.Conv2d(3, 48, kernel_size=16, stride=16, bias=False).to(dtype)
    images = torch.randn(3, 3, 64, 64).to(dtype).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = conv(images).flatten(2).transpose(1, 2).float()
        tokens = fastpath.patch_tokens(conv, images).float()
    assert tokens.shape == (3, 16, 48)
    tolerance = 1e-5 if dtype == torch.float32 else 0.02 * expected.abs().max().item()
    torch.testing.assert_close(tokens, expected, atol=tolerance, rtol=0)


def test_patch_tokens_only_without_autograd_or_tracing(model, monkeypatch):
    calls = []
    real = fastpath.patch_tokens
    monkeypatch.setattr(fastpath, "patch_tokens", lambda conv, images: calls.append(1) or real(conv, images))
    visual = model.clip.visual
    images = torch.randn(2, 3, visual.input_resolution, visual.input_resolution)
    with torch.inference_mode():
        fast = visual(images)
    assert calls == [1]
    plain = visual(images)  # autograd on: the convolution, which trains
    with torch.no_grad():
        traced = torch.jit.trace(visual, images, check_trace=False)  # its check would rerun untraced
    assert calls == [1]
    assert "aten::_convolution" in str(traced.inlined_graph)
    torch.testing.assert_close(fast, plain.detach(), atol=1e-5, rtol=1e-5)


def _prompt_layer(seed: int = 3):
    from actionclip.families.xclip.layers import PromptGeneratorLayer

    torch.manual_seed(seed)
    layer = PromptGeneratorLayer(64, 2)
    with torch.no_grad():
        for param in layer.parameters():
            param.copy_(torch.randn(param.shape) * param.shape[-1] ** -0.5)
    return layer


def test_prompt_generator_mlp_takes_the_fast_path_with_the_plain_numbers(monkeypatch):
    layer = _prompt_layer()
    text, visual = torch.randn(2, 9, 64), torch.randn(2, 5, 64)
    calls = []
    real = fastpath.mlp_residual
    monkeypatch.setattr(fastpath, "mlp_residual", lambda *args: calls.append(1) or real(*args))
    with torch.inference_mode():
        fast = layer(text, visual)
        plain = _plain(monkeypatch, lambda: layer(text, visual))
    assert calls == [1]
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)


@needs_packing
def test_prompt_generator_packed_bf16_follows_its_weights(monkeypatch):
    layer = _prompt_layer()
    text, visual = torch.randn(2, 9, 64), torch.randn(2, 5, 64)
    with torch.inference_mode():
        exact = layer(text, visual)
    layer = layer.to(torch.bfloat16)
    text, visual = text.bfloat16(), visual.bfloat16()
    with torch.inference_mode():
        packed = layer(text, visual).float()
        assert layer.__dict__.get(fastpath._CACHE_ATTR) is not None  # the packed MLP ran
        plain = _plain(monkeypatch, lambda: layer(text, visual)).float()
    assert (packed - exact).abs().mean() <= 1.5 * (plain - exact).abs().mean()
    with torch.no_grad():
        layer.mlp[3].weight.mul_(-1)
    with torch.inference_mode():
        changed = layer(text, visual).float()
        changed_plain = _plain(monkeypatch, lambda: layer(text, visual)).float()
    assert not torch.allclose(changed, packed)
    torch.testing.assert_close(changed, changed_plain, atol=0.05 * changed_plain.abs().max().item(), rtol=0)
