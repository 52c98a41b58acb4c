"""Each fusion head against an independent re-statement of the original ActionCLIP maths.

The references below use only tensor operations (no nn modules from the library) and the weights
as they sit in the checkpoint, so a wrong key mapping, layout, epsilon or residual would show.
"""

from __future__ import annotations

import pytest
import torch

import actionclip
from actionclip._dev.weights import write_checkpoint
from actionclip.errors import CheckpointError
from actionclip.loading.checkpoints import read_checkpoint

TOLERANCE = 1e-4


def tf_layer_norm(x, w, b, eps):
    """The original fusion's TF-style LayerNorm (epsilon inside the square root)."""
    u = x.mean(-1, keepdim=True)
    s = (x - u).pow(2).mean(-1, keepdim=True)
    return w * (x - u) / torch.sqrt(s + eps) + b


def attention(x, in_w, in_b, out_w, out_b, heads):
    """Multi-head self-attention on [L, N, D] (sequence first, like nn.MultiheadAttention)."""
    L, N, D = x.shape
    q, k, v = (x @ in_w.T + in_b).chunk(3, dim=-1)
    split = lambda t: t.reshape(L, N * heads, D // heads).transpose(0, 1)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    weights = torch.softmax(q @ k.transpose(1, 2) / (D // heads) ** 0.5, dim=-1)
    out = (weights @ v).transpose(0, 1).reshape(L, N, D)
    return out @ out_w.T + out_b


def ref_transf(x, sd, heads, eps):
    b, t, d = x.shape
    h = (x + sd["frame_position_embeddings.weight"][:t]).permute(1, 0, 2)
    layers = len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")})
    for i in range(layers):
        p = lambda n: sd[f"transformer.resblocks.{i}.{n}"]  # noqa: E731
        y = tf_layer_norm(h, p("ln_1.weight"), p("ln_1.bias"), eps)
        h = h + attention(y, p("attn.in_proj_weight"), p("attn.in_proj_bias"), p("attn.out_proj.weight"),
                          p("attn.out_proj.bias"), heads)
        y = tf_layer_norm(h, p("ln_2.weight"), p("ln_2.bias"), eps)
        y = y @ p("mlp.c_fc.weight").T + p("mlp.c_fc.bias")
        y = y * torch.sigmoid(1.702 * y)
        h = h + y @ p("mlp.c_proj.weight").T + p("mlp.c_proj.bias")
    return (h.permute(1, 0, 2) + x).mean(1)


def ref_transf_cls(x, sd):
    b, t, d = x.shape
    h = torch.cat([sd["transformer.cls_token"].expand(b, 1, d), x], 1) + sd["transformer.pos_embed"]
    h = h.transpose(0, 1)
    prefix = "transformer.transformer_enc."
    layers = len({k[len(prefix):].split(".")[1] for k in sd if k.startswith(prefix + "layers.")})
    for i in range(layers):
        p = lambda n: sd[f"{prefix}layers.{i}.{n}"]  # noqa: E731
        a = attention(h, p("self_attn.in_proj_weight"), p("self_attn.in_proj_bias"), p("self_attn.out_proj.weight"),
                      p("self_attn.out_proj.bias"), 8)
        h = tf_layer_norm(h + a, p("norm1.weight"), p("norm1.bias"), 1e-5)  # post-LN
        f = torch.relu(h @ p("linear1.weight").T + p("linear1.bias")) @ p("linear2.weight").T + p("linear2.bias")
        h = tf_layer_norm(h + f, p("norm2.weight"), p("norm2.bias"), 1e-5)
    h = tf_layer_norm(h, sd[prefix + "norm.weight"], sd[prefix + "norm.bias"], 1e-5)
    return h[0]


def ref_lstm(x, sd):
    b, t, d = x.shape
    h = torch.zeros(b, d)
    c = torch.zeros(b, d)
    outs = []
    for step in range(t):
        gates = x[:, step] @ sd["lstm_visual.weight_ih_l0"].T + sd["lstm_visual.bias_ih_l0"] \
            + h @ sd["lstm_visual.weight_hh_l0"].T + sd["lstm_visual.bias_hh_l0"]
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return (torch.stack(outs, 1) + x).mean(1)


def ref_conv1d(x, sd):
    b, t, d = x.shape
    # The original reinterprets the [b, t, d] memory as [b, d, t] (a view, not a transpose).
    y = x.contiguous().view(b, d, t)
    w = sd["shift.weight"][:, 0]  # [d, 3]
    padded = torch.nn.functional.pad(y, (1, 1))
    out = w[:, 0:1] * padded[..., :-2] + w[:, 1:2] * padded[..., 1:-1] + w[:, 2:3] * padded[..., 2:]
    return (out.permute(0, 2, 1) + x).mean(1)


@pytest.mark.parametrize("kind", ["meanP", "Conv_1D", "LSTM", "Transf", "Transf_cls"])
def test_original_heads_match_restated_maths(tmp_path, kind):
    path = write_checkpoint(tmp_path / f"{kind}.pt", "actionclip", fusion=kind, seed=7)
    model = actionclip.load(path, dtype="fp32")
    assert model.fusion_type == kind
    sd = {k: v.float() for k, v in read_checkpoint(path).fusion_state_dict.items()}
    torch.manual_seed(0)
    x = torch.randn(3, 8, 64)
    with torch.no_grad():
        ours = model.fuse(x)
    expected = {
        "meanP": lambda: x.mean(1),
        "Conv_1D": lambda: ref_conv1d(x, sd),
        "LSTM": lambda: ref_lstm(x, sd),
        "Transf": lambda: ref_transf(x, sd, heads=2, eps=1e-12),
        "Transf_cls": lambda: ref_transf_cls(x, sd),
    }[kind]()
    assert ours.shape == (3, 64)
    assert (ours - expected).abs().max().item() <= TOLERANCE
    if kind != "meanP":  # the head does something beyond averaging
        assert (ours - x.mean(1)).abs().max().item() > 1e-3


def test_original_transf_table_is_longer_than_t(tmp_path):
    path = write_checkpoint(tmp_path / "t.pt", "actionclip", fusion="Transf")
    assert read_checkpoint(path).fusion_state_dict["frame_position_embeddings.weight"].shape[0] == 77
    for frames in (8, 16, 32):
        model = actionclip.load(path, frames=frames, dtype="fp32")
        sd = {k: v.float() for k, v in read_checkpoint(path).fusion_state_dict.items()}
        x = torch.randn(2, frames, 64)
        with torch.no_grad():
            assert (model.fuse(x) - ref_transf(x, sd, heads=2, eps=1e-12)).abs().max() <= TOLERANCE


def test_mmaction2_adapter_uses_t_row_table_and_clip_layer_norm(tmp_path):
    path = write_checkpoint(tmp_path / "m.pth", "mmaction2", frames=16)
    model = actionclip.load(path, dtype="fp32")
    assert model.num_frames == 16
    sd = {k: v.float() for k, v in read_checkpoint(path).fusion_state_dict.items()}
    x = torch.randn(2, 16, 64) * 0.01  # small inputs make the LayerNorm epsilon visible
    with torch.no_grad():
        ours = model.fuse(x)
    assert (ours - ref_transf(x, sd, heads=2, eps=1e-5)).abs().max() <= TOLERANCE
    with pytest.raises(CheckpointError, match="16 frame positions"):
        actionclip.load(path, frames=32, dtype="fp32")


def test_transf_cls_needs_its_trained_frame_count(tmp_path):
    path = write_checkpoint(tmp_path / "c.pt", "actionclip", fusion="Transf_cls", frames=8)
    assert actionclip.load(path, dtype="fp32").num_frames == 8
    with pytest.raises(CheckpointError, match="built for 8 frames"):
        actionclip.load(path, frames=16, dtype="fp32")
