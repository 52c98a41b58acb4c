"""Random X-CLIP checkpoints in both published layouts, for tests (tiny) and benchmarks (full size).

* ``xclip``: the original release's ``.pth``: ``{"model": <original names>, "epoch", "max_accuracy"}``;
  with ``training_state`` also the optimizer and scheduler state and the yacs config the training
  script pickles beside them (a stand-in class named ``yacs.config.CfgNode``, so that the file
  references the same global as the real ones without yacs installed).
* ``hf-xclip`` / ``hf-xclip-bin``: a folder saved by ``transformers``' own ``XCLIPModel`` from an
  ``XCLIPConfig`` (``model.safetensors`` or ``pytorch_model.bin``), as the hub holds them.

Every parameter gets a random value (LayerNorms near 1, biases and ``alpha`` non-zero), so a parity
test would catch a dropped bias, a swapped norm or heads split the wrong way.
"""

from __future__ import annotations

import os
import sys
import types
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from actionclip.families.xclip.model import XCLIPArch, XCLIPNetwork
from actionclip.model.clip import CLIPConfig

__all__ = ["XCLIP_SIZES", "XCLIP_FORMATS", "random_xclip", "write_xclip_checkpoint", "hf_xclip_config"]


def _arch(clip: CLIPConfig, heads: int) -> XCLIPArch:
    return XCLIPArch(clip=clip, frames=8, mit_layers=1, mit_heads=heads, prompt_layers=2, prompt_heads=heads)


def _base(patch: int) -> CLIPConfig:
    return CLIPConfig(embed_dim=512, image_resolution=224, vision_width=768, vision_layers=12, vision_heads=12,
                      vision_patch_size=patch, context_length=77, vocab_size=49408, text_width=512, text_layers=12,
                      text_heads=8)


def _tiny(patch: int) -> CLIPConfig:
    # Heads = width / 64 everywhere, as the original infers them; three image heads and two text /
    # integration / prompt heads, so that a head split the wrong way shows. Full vocabulary and
    # context, so the real tokenizer's ids fit.
    return CLIPConfig(embed_dim=128, image_resolution=64, vision_width=192, vision_layers=2, vision_heads=3,
                      vision_patch_size=patch, context_length=77, vocab_size=49408, text_width=128, text_layers=2,
                      text_heads=2)


XCLIP_SIZES: dict[str, XCLIPArch] = {
    "tiny": _arch(_tiny(32), 2),  # patch-32 style: a 2 x 2 grid
    "tiny-16": _arch(_tiny(16), 2),  # patch-16 style: a 4 x 4 grid
    "B/32": _arch(_base(32), 8),
    "B/16": _arch(_base(16), 8),
}
XCLIP_FORMATS = ("xclip", "hf-xclip", "hf-xclip-bin")


def _randomize(module: nn.Module, generator: torch.Generator) -> None:
    norms = {id(p) for m in module.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters(recurse=False)}
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            leaf = name.rsplit(".", 1)[-1]
            if id(param) in norms:
                value = (1.0 if leaf == "weight" else 0.0) + 0.05 * noise
            elif leaf == "logit_scale":
                value = torch.full(param.shape, 4.6052)  # CLIP's released temperature: exp() == 100
            elif leaf == "alpha":
                value = 0.1 + 0.05 * noise  # the original's initial 0.1, spread so that channels differ
            elif leaf == "bias":
                value = 0.05 * noise
            elif "embedding" in name:
                value = 0.02 * noise
            else:
                value = noise * (param.numel() / param.shape[0]) ** -0.5
            param.copy_(value)


def random_xclip(size: str = "tiny", frames: int = 8, seed: int = 0) -> XCLIPNetwork:
    """Our X-CLIP network with random weights (``size``: a key of :data:`XCLIP_SIZES`)."""
    net = XCLIPNetwork(replace(XCLIP_SIZES[size], frames=frames))
    _randomize(net, torch.Generator().manual_seed(seed))
    return net


def hf_xclip_config(arch: XCLIPArch) -> dict:
    """``transformers.XCLIPConfig`` keyword arguments for ``arch``."""
    c = arch.clip
    return {
        "projection_dim": c.embed_dim,
        "prompt_layers": arch.prompt_layers,
        "prompt_num_attention_heads": arch.prompt_heads,
        "logit_scale_init_value": 4.6052,
        "text_config": {
            "vocab_size": c.vocab_size, "hidden_size": c.text_width, "intermediate_size": 4 * c.text_width,
            "num_hidden_layers": c.text_layers, "num_attention_heads": c.text_heads,
            "max_position_embeddings": c.context_length,
        },
        "vision_config": {
            "hidden_size": c.vision_width, "intermediate_size": 4 * c.vision_width,
            "num_hidden_layers": c.vision_layers, "num_attention_heads": c.vision_heads,
            "image_size": c.image_resolution, "patch_size": c.vision_patch_size, "num_frames": arch.frames,
            "mit_hidden_size": c.embed_dim, "mit_intermediate_size": 4 * c.embed_dim,
            "mit_num_hidden_layers": arch.mit_layers, "mit_num_attention_heads": arch.mit_heads,
        },
    }


def write_xclip_checkpoint(
    path: str | os.PathLike,
    format: str = "xclip",
    size: str = "tiny",
    frames: int = 8,
    seed: int = 0,
    *,
    fp16: bool = False,
    training_state: bool = False,
) -> Path:
    """Write a random X-CLIP checkpoint as the real files of ``format`` look; return its path."""
    if format not in XCLIP_FORMATS:
        raise ValueError(f"unknown X-CLIP format {format!r}; expected one of {XCLIP_FORMATS}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if format != "xclip":
        _write_hf(path, replace(XCLIP_SIZES[size], frames=frames), seed, safetensors=format == "hf-xclip")
        return path
    sd = random_xclip(size, frames, seed).original_state_dict()
    payload: dict = {"model": {k: v.half() if fp16 else v for k, v in sd.items()}, "epoch": 29,
                     "max_accuracy": 80.4}
    if training_state:
        payload["optimizer"] = {"state": {}, "param_groups": [{"lr": 8e-6, "weight_decay": 0.001, "params": [0]}]}
        payload["lr_scheduler"] = {"t_initial": 30, "warmup_t": 5}
        payload["config"] = _yacs_like({"DATA": {"NUM_FRAMES": frames}, "MODEL": {"ARCH": "ViT-B/32"}})
    with yacs_stand_in():
        torch.save(payload, path)
    return path


class _CfgNode(dict):
    """Stands in for ``yacs.config.CfgNode`` (a dict subclass with attributes) when pickling."""


_CfgNode.__module__, _CfgNode.__qualname__, _CfgNode.__name__ = "yacs.config", "CfgNode", "CfgNode"


def _yacs_like(data: dict) -> dict:
    try:
        from yacs.config import CfgNode  # the real one, when installed
    except ImportError:
        CfgNode = _CfgNode
    node = CfgNode({k: _yacs_like(v) if isinstance(v, dict) else v for k, v in data.items()})
    node.__dict__["__immutable__"] = True
    return node


class yacs_stand_in:
    """Registers a ``yacs.config`` module holding the stand-in while pickling (pickle checks that the
    class it names can be imported back), unless the real yacs is installed."""

    def __enter__(self) -> None:
        self.added = [name for name in ("yacs", "yacs.config") if name not in sys.modules]
        for name in self.added:
            sys.modules[name] = types.ModuleType(name)
        if self.added:
            sys.modules["yacs.config"].CfgNode = _CfgNode  # type: ignore[attr-defined]

    def __exit__(self, *exc: object) -> None:
        for name in self.added:
            sys.modules.pop(name, None)


def _write_hf(path: Path, arch: XCLIPArch, seed: int, *, safetensors: bool) -> None:
    """Saved by ``transformers`` itself (a test dependency), every parameter then made random."""
    from transformers import XCLIPConfig, XCLIPModel

    model = XCLIPModel(XCLIPConfig(**hf_xclip_config(arch)))
    _randomize(model, torch.Generator().manual_seed(seed))
    model.save_pretrained(str(path))
    if not safetensors:
        # transformers 5 writes safetensors only; the hub's 2022 uploads are pytorch_model.bin, whose
        # state dicts also held the (then persistent) position_ids buffers.
        sd = dict(model.state_dict())
        for tower in ("text_model", "vision_model"):
            sd[f"{tower}.embeddings.position_ids"] = model.get_submodule(f"{tower}.embeddings").position_ids.clone()
        torch.save(sd, path / "pytorch_model.bin")
        (path / "model.safetensors").unlink()
