"""Random checkpoints laid out as ViFi-CLIP's, Open-VCLIP's and FROSTER's real files, for tests and
benchmarks (see :mod:`actionclip.loading.vclip_formats` for what the real files hold).

ViFi-CLIP's files are pickles of a DistributedDataParallel state dict plus a yacs ``CfgNode``; yacs
need not be installed here, so while writing, a stand-in class is registered under the real name
(``yacs.config.CfgNode``), and the pickle references exactly what the real files reference.
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from actionclip._dev.weights import random_clip

__all__ = ["write_vificlip", "write_openvclip", "VCLIP_FORMATS"]

VCLIP_FORMATS = ("vificlip", "openvclip", "froster")

# A few rephrased class names in FROSTER's style, and plain ones, for the stored prompt buffers.
_TRAINING_CLASSES = ("abseiling", "air drumming", "answering questions")


@contextlib.contextmanager
def _yacs_cfgnode() -> Iterator[type]:
    """yacs' ``CfgNode`` class, or a stand-in pickled under its name when yacs is not installed."""
    try:
        from yacs.config import CfgNode  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        yield CfgNode
        return

    class CfgNode(dict):  # what pickling a real node writes: dict items, then its __dict__
        def __init__(self, init: Mapping[str, Any] | None = None):
            super().__init__(init or {})
            self.__dict__.update({"__immutable__": True, "__deprecated_keys__": set(), "__renamed_keys__": {},
                                  "__new_allowed__": False})

    CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"
    package, module = types.ModuleType("yacs"), types.ModuleType("yacs.config")
    module.CfgNode, package.config = CfgNode, module
    saved = {name: sys.modules.get(name) for name in ("yacs", "yacs.config")}
    sys.modules.update({"yacs": package, "yacs.config": module})
    try:
        yield CfgNode
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def write_vificlip(path: str | os.PathLike, openai_sd: Mapping[str, torch.Tensor] | None = None, *,
                   size: str = "tiny", seed: int = 0, frames: int = 32, prompt_learning: bool = False) -> Path:
    """A fine-tuned ViFi-CLIP as their ``main.py`` saves it: a random CLIP (``seed``) whose token
    embedding is ``openai_sd``'s (it stays frozen there, and is left out of the file).

    ``prompt_learning`` adds learned context vectors, as their "bridge and prompt" files hold."""
    from actionclip.text.tokenizer import tokenize

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = dict(random_clip(size, seed).openai_state_dict())
    token_embedding = (openai_sd or sd)["token_embedding.weight"]
    model: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key.startswith("visual."):
            model["module.image_encoder." + key[len("visual."):]] = value
        elif key == "logit_scale":
            model["module.logit_scale"] = value
        elif key != "token_embedding.weight":
            model["module.text_encoder." + key] = value
    # The prompt learner's buffer: the training classes' prompts through the frozen token embedding.
    tokens = tokenize([f"a photo of a {name}." for name in _TRAINING_CLASSES])
    model["module.prompt_learner.complete_text_embeddings"] = token_embedding[tokens]
    if prompt_learning:
        model["module.prompt_learner.ctx"] = torch.randn(4, token_embedding.shape[1]) * 0.02
    with _yacs_cfgnode() as node:
        config = node({"DATA": node({"NUM_FRAMES": frames, "INPUT_SIZE": 224}),
                       "MODEL": node({"ARCH": "ViT-B/16"}),
                       "TRAINER": node({"ViFi_CLIP": node({"CTX_INIT": "a photo of a", "USE": "both"})})})
        torch.save({"model": model, "optimizer": {"state": {}, "param_groups": []}, "lr_scheduler": {"last_epoch": 9},
                    "max_accuracy": 0.0, "epoch": 9, "config": config}, path)
    return path


# What PySlowFast's save_checkpoint stores as "cfg": yacs' dump() of the training config, sorted
# keys and YAML scalars (``true``, ``null``); a few of its ~900 lines, the ones a reader looks at.
_CFG_DUMP = """DATA:
  INDEX_LABEL_MAPPING_FILE: label_db/k400-index2cls.json
  MEAN:
  - 0.48145466
  - 0.4578275
  - 0.40821073
  NUM_FRAMES: 8
MODEL:
  ARCH: {arch}
  KEEP_RAW_MODEL: {distil}
  MODEL_NAME: TemporalClipVideo
  RAW_MODEL_DISTILLATION: {distil}
  TEMPORAL_MODELING_TYPE: {temporal}
TEST:
  CLIP_ORI_PATH: null
  PATCHING_MODEL: false
  PATCHING_RATIO: 0.5
TRAIN:
  MIXED_PRECISION: true
"""

_ARCH = {(768, 32): "vitb32", (768, 16): "vitb16", (1024, 14): "vitl14"}


def write_openvclip(path: str | os.PathLike, *, size: str = "tiny", seed: int = 0, froster: bool = False,
                    training: bool = False, temporal: str = "expand_temporal_view") -> Path:
    """An Open-VCLIP (or, with ``froster``, a FROSTER) checkpoint of a random CLIP (``seed``), saved as
    their code saves it.

    By default a released file: what their ``weight_average_tool.py`` writes, ``{"model_state": ...}``
    holding ``model.`` + every key of OpenAI's archive (less its three integer attributes), fp32, and
    for FROSTER its distillation heads ``projector_v``/``projector_t``. With ``training``, what
    PySlowFast's ``save_checkpoint`` writes each epoch under mixed precision: ``epoch`` (0-based),
    ``model_state`` (the whole model's state dict: FROSTER's also holds the frozen teacher
    ``raw_model.``), ``optimizer_state``, ``cfg`` (the YAML dump) and ``scaler_state``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clip_sd = random_clip(size, seed).openai_state_dict()
    state = {f"model.{k}": v for k, v in clip_sd.items()}
    if froster:
        dim = clip_sd["text_projection"].shape[1]
        generator = torch.Generator().manual_seed(seed + 7)
        for head in ("projector_v", "projector_t"):  # Linear, GELU, Linear, no biases
            state[f"{head}.0.weight"] = torch.randn(dim, dim, generator=generator) * dim**-0.5
            state[f"{head}.2.weight"] = torch.randn(dim, dim, generator=generator) * 0.01
    payload: dict[str, Any] = {"model_state": state}
    if training:
        if froster:  # the teacher: OpenAI's CLIP, frozen (here another random CLIP)
            state.update({f"raw_model.{k}": v for k, v in random_clip(size, seed + 1).openai_state_dict().items()})
        conv = clip_sd["visual.conv1.weight"]
        arch = _ARCH.get((int(conv.shape[0]), int(conv.shape[-1])), "vitb16")
        groups = [{"lr": 3.33e-08, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": decay, "amsgrad": False,
                   "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
                   "fused": None, "params": []} for decay in (0.0, 0.01)]
        payload = {"epoch": 21, "model_state": state, "optimizer_state": {"state": {}, "param_groups": groups},
                   "cfg": _CFG_DUMP.format(arch=arch, temporal=temporal, distil=str(froster).lower()),
                   "scaler_state": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                                    "growth_interval": 2000, "_growth_tracker": 0}}
    torch.save(payload, path)
    return path
