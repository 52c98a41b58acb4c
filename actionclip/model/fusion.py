"""Temporal fusion heads: frame embeddings [B, T, D] -> one video embedding [B, D].

The five heads of the original ActionCLIP (``modules/Visual_Prompt.py``), numerically equal to its
definitions, including its quirks, because released checkpoints were trained with them:

- ``meanP``: mean over frames.
- ``Conv_1D``: a fixed depthwise temporal shift. The original *reinterprets* the [B, T, D] memory as
  [B, D, T] (``view``, not a transpose) before the convolution; we do the same.
- ``LSTM``: one LSTM layer, residual, mean.
- ``Transf``: learned frame positions + a 6-layer pre-LN transformer, residual, mean. The original's
  position table has 77 rows (CLIP's context length) and its LayerNorms use eps=1e-12; mmaction2's
  port has a table of T rows and eps=1e-5. Both are kept as loaded.
- ``Transf_cls``: a class token + ``nn.TransformerEncoder`` (post-LN, 8 heads, ReLU); output at the
  class token.

State-dict keys are the original's without the ``module.`` prefix (``frame_position_embeddings.weight``,
``transformer.resblocks.0.attn.in_proj_weight``, ``lstm_visual.weight_ih_l0``, ``shift.weight``,
``transformer.cls_token`` ...). The original also creates an unused ``frame_position_embeddings``
table for Conv_1D, LSTM and Transf_cls; it is kept when present so checkpoints round-trip.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from actionclip.errors import CheckpointError
from actionclip.model.layers import Transformer, count_layers, load_state_dict_checked

FUSION_TYPES = ("meanP", "Conv_1D", "LSTM", "Transf", "Transf_cls")
ORIGINAL_POSITION_ROWS = 77  # the original sizes its table by CLIP's text context length
ORIGINAL_LAYER_NORM_EPS = 1e-12
TRANSF_LAYERS = 6
TRANSF_CLS_HEADS = 8


class Fusion(nn.Module):
    kind: str = ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_frames(self, num_frames: int) -> None:
        """Raise if this head cannot take ``num_frames`` frames."""


class _WithPositionTable(Fusion):
    """A head that may carry the original's ``frame_position_embeddings`` table."""

    def __init__(self, embed_dim: int, position_rows: int | None):
        super().__init__()
        if position_rows:
            self.frame_position_embeddings = nn.Embedding(position_rows, embed_dim)


class MeanPooling(Fusion):
    kind = "meanP"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class TemporalShift(_WithPositionTable):
    kind = "Conv_1D"

    def __init__(self, embed_dim: int, position_rows: int | None = ORIGINAL_POSITION_ROWS):
        super().__init__(embed_dim, position_rows)
        self.shift = nn.Conv1d(embed_dim, embed_dim, 3, padding=1, groups=embed_dim, bias=False)
        # The original's fixed initial shift: a quarter of the channels look back, half stay, a quarter look ahead.
        weight = torch.zeros(embed_dim, 1, 3)
        weight[: embed_dim // 4, 0, 0] = 1.0
        weight[embed_dim // 4 : embed_dim // 4 + embed_dim // 2, 0, 1] = 1.0
        weight[-(embed_dim // 4) :, 0, 2] = 1.0
        self.shift.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        shifted = self.shift(x.contiguous().view(b, c, t).to(self.shift.weight.dtype))
        return (shifted.permute(0, 2, 1).to(x.dtype) + x).mean(dim=1)


class LSTMFusion(_WithPositionTable):
    kind = "LSTM"

    def __init__(self, embed_dim: int, position_rows: int | None = ORIGINAL_POSITION_ROWS):
        super().__init__(embed_dim, position_rows)
        self.lstm_visual = nn.LSTM(embed_dim, embed_dim, batch_first=True, num_layers=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm_visual(x.to(self.lstm_visual.weight_ih_l0.dtype))
        return (out.to(x.dtype) + x).mean(dim=1)


class TemporalTransformer(Fusion):
    kind = "Transf"

    def __init__(
        self,
        embed_dim: int,
        heads: int,
        position_rows: int = ORIGINAL_POSITION_ROWS,
        layers: int = TRANSF_LAYERS,
        eps: float = ORIGINAL_LAYER_NORM_EPS,
    ):
        super().__init__()
        self.frame_position_embeddings = nn.Embedding(position_rows, embed_dim)
        self.transformer = Transformer(embed_dim, layers, heads, "quick_gelu", eps)

    def check_frames(self, num_frames: int) -> None:
        rows = self.frame_position_embeddings.num_embeddings
        if num_frames > rows:
            raise CheckpointError(f"Transf fusion has {rows} frame positions, cannot take {num_frames} frames")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_frames(x.shape[1])
        pos = self.frame_position_embeddings.weight[: x.shape[1]]
        y = self.transformer(x + pos.to(x.dtype))
        return (y.to(x.dtype) + x).mean(dim=1)


class _ClassTokenAggregator(nn.Module):
    """The original's ``TAggregate``: class token + learned positions + ``nn.TransformerEncoder``."""

    def __init__(self, num_frames: int, embed_dim: int, layers: int, heads: int, feedforward: int):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=embed_dim, nhead=heads, dim_feedforward=feedforward)
        self.transformer_enc = nn.TransformerEncoder(
            layer, num_layers=layers, norm=nn.LayerNorm(embed_dim), enable_nested_tensor=False
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_frames + 1, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.cls_token.to(x.dtype).expand(x.shape[0], -1, -1), x], dim=1)
        x = (x + self.pos_embed.to(x.dtype)).transpose(0, 1)  # sequence-first, as the original
        return self.transformer_enc(x)[0]


class ClassTokenTransformer(_WithPositionTable):
    kind = "Transf_cls"

    def __init__(
        self,
        embed_dim: int,
        num_frames: int,
        layers: int = TRANSF_LAYERS,
        heads: int = TRANSF_CLS_HEADS,
        feedforward: int = 2048,
        position_rows: int | None = ORIGINAL_POSITION_ROWS,
    ):
        super().__init__(embed_dim, position_rows)
        self.transformer = _ClassTokenAggregator(num_frames, embed_dim, layers, heads, feedforward)

    @property
    def num_frames(self) -> int:
        return self.transformer.pos_embed.shape[1] - 1

    def check_frames(self, num_frames: int) -> None:
        if num_frames != self.num_frames:
            raise CheckpointError(f"Transf_cls fusion was built for {self.num_frames} frames, got {num_frames}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_frames(x.shape[1])
        return self.transformer(x).to(x.dtype)


def detect_fusion_type(sd: Mapping[str, torch.Tensor]) -> str:
    """Which head a (prefix-free) fusion state dict belongs to."""
    if "transformer.cls_token" in sd:
        return "Transf_cls"
    if any(k.startswith("transformer.resblocks.") for k in sd):
        return "Transf"
    if any(k.startswith("lstm_visual.") for k in sd):
        return "LSTM"
    if "shift.weight" in sd:
        return "Conv_1D"
    if set(sd) <= {"frame_position_embeddings.weight"}:
        return "meanP"
    raise CheckpointError(f"unrecognised fusion weights (keys e.g. {', '.join(list(sd)[:3])})")


def new_fusion(
    kind: str,
    embed_dim: int,
    heads: int,
    num_frames: int = 8,
    *,
    position_rows: int | None = ORIGINAL_POSITION_ROWS,
    eps: float = ORIGINAL_LAYER_NORM_EPS,
) -> Fusion:
    """A freshly initialised head (as the original initialises it)."""
    if kind not in FUSION_TYPES:
        raise CheckpointError(f"unknown fusion {kind!r}; expected one of {', '.join(FUSION_TYPES)}")
    if kind == "meanP":
        return MeanPooling()
    if kind == "Conv_1D":
        head: Fusion = TemporalShift(embed_dim, position_rows)
    elif kind == "LSTM":
        head = LSTMFusion(embed_dim, position_rows)
    elif kind == "Transf":
        head = TemporalTransformer(embed_dim, heads, position_rows or num_frames, eps=eps)
    else:
        head = ClassTokenTransformer(embed_dim, num_frames, position_rows=position_rows)
    _init_like_original(head)
    return head


def _init_like_original(head: Fusion) -> None:
    for module in head.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)) and not isinstance(head, ClassTokenTransformer):
            nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
    if isinstance(head, TemporalTransformer):
        for block in head.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=0.02)
            nn.init.zeros_(block.attn.in_proj_bias)
    if isinstance(head, ClassTokenTransformer):
        nn.init.trunc_normal_(head.transformer.pos_embed, std=0.02)
        nn.init.trunc_normal_(head.transformer.cls_token, std=0.02)


def fusion_from_state_dict(
    sd: Mapping[str, torch.Tensor],
    *,
    embed_dim: int,
    heads: int,
    num_frames: int,
    eps: float = ORIGINAL_LAYER_NORM_EPS,
    kind: str | None = None,
) -> Fusion:
    """Build the head a (prefix-free) state dict describes and load it. ``heads`` is the Transf head
    count, which the original derives from CLIP's text width (width // 64)."""
    kind = kind or detect_fusion_type(sd)
    rows = sd["frame_position_embeddings.weight"].shape[0] if "frame_position_embeddings.weight" in sd else None
    if kind == "meanP":
        head: Fusion = MeanPooling()
        sd = {}
    elif kind == "Conv_1D":
        head = TemporalShift(embed_dim, rows)
    elif kind == "LSTM":
        head = LSTMFusion(embed_dim, rows)
    elif kind == "Transf":
        if rows is None:
            raise CheckpointError("Transf fusion weights lack frame_position_embeddings.weight")
        layers = count_layers(sd, "transformer.resblocks.")
        head = TemporalTransformer(embed_dim, heads, rows, layers, eps)
    else:
        try:
            frames = sd["transformer.pos_embed"].shape[1] - 1
            feedforward = sd["transformer.transformer_enc.layers.0.linear1.weight"].shape[0]
        except KeyError as exc:
            raise CheckpointError(f"Transf_cls fusion weights lack {exc.args[0]!r}") from None
        layers = count_layers(sd, "transformer.transformer_enc.layers.")
        head = ClassTokenTransformer(embed_dim, frames, layers, TRANSF_CLS_HEADS, feedforward, rows)
    load_state_dict_checked(head, sd, what=f"{kind} fusion")
    head.check_frames(num_frames)
    return head
