"""``actionclip.load``: a registry name or a checkpoint path in, a ready model out.

The steps, each in its own module: the name is looked up in :mod:`~actionclip.loading.registry`;
its file is fetched and verified by :mod:`~actionclip.loading.download` (a path is used as is); the
file's format is recognised by :mod:`~actionclip.loading.checkpoints`, which also says which model
family builds it; the family's default :class:`~actionclip.model.config.ModelConfig` is updated with
what the file carries, then the registry entry's overrides, then the caller's ``frames``; the family
builds the model, which is moved to the device and precision :func:`actionclip.runtime.resolve`
chooses (the one rule the CLI's ``--device``/``--dtype auto`` follows too).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from actionclip.errors import UsageError

if TYPE_CHECKING:
    import torch

    from actionclip.loading.registry import ModelSpec
    from actionclip.model.loaded import LoadedCheckpoint
    from actionclip.model.module import VideoModule

__all__ = ["load", "build_model", "fetch_clip_weights"]


def fetch_clip_weights(name: str) -> dict[str, torch.Tensor]:
    """A registry model's CLIP state dict (downloaded and cached on first use): the ``fetch`` a
    family record is handed when its builder needs another model's weights."""
    from actionclip.loading.checkpoints import read_checkpoint
    from actionclip.loading.download import download

    return read_checkpoint(download(name)).clip_state_dict


def build_model(ckpt: LoadedCheckpoint, *, spec: ModelSpec | None = None,
                frames: int | None = None) -> VideoModule:
    """The model a read checkpoint describes, with its config (family default < file < registry
    entry < ``frames``). On the CPU, in fp32."""
    from actionclip.families import FAMILIES

    family = spec.family if spec is not None else ckpt.family
    if family not in FAMILIES:
        raise UsageError(f"{ckpt.path}: unknown model family {family!r}")
    record = FAMILIES[family]
    config = record.default_config().updated(ckpt.config)
    if spec is not None:
        config = config.updated(spec.config).replace(frames=spec.frames)
    config = config.replace(frames=ckpt.num_frames)  # what the weights were built for wins over the entry
    if frames is not None:
        if int(frames) < 1:
            raise UsageError(f"frames must be at least 1, got {frames}")
        config = config.replace(frames=int(frames))
    return record.build(ckpt, config, fetch_clip_weights)


def load(
    name_or_path: str | os.PathLike,
    device: str | torch.device | None = "auto",
    dtype: str | torch.dtype | None = None,
    frames: int | None = None,
) -> VideoModule:
    """Load a model by registry name (``"vit-b-32-8f"``, see ``actionclip models``; downloaded and
    cached on first use) or from a local checkpoint file or folder in any supported format.

    Args:
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        dtype: ``None``/``"auto"`` picks the fast native precision for the device (bf16 on CPUs with
            AMX/AVX512-BF16 and on CUDA cards with bf16, fp16 on older cards, fp32 on other CPUs);
            or ``"fp32"``, ``"bf16"``, ``"fp16"`` (or a torch dtype). Pass ``"fp32"`` for results
            that match a reference implementation to 1e-5.
        frames: frames sampled per clip (default: the model's).

    Returns:
        The model in eval mode.
    """
    import torch

    from actionclip import runtime
    from actionclip.loading.checkpoints import read_checkpoint
    from actionclip.loading.download import resolve
    from actionclip.loading.registry import find_spec

    spec = None if Path(os.fspath(name_or_path)).expanduser().exists() else find_spec(os.fspath(name_or_path))
    choice = runtime.resolve(None if device is None else str(device), dtype)  # bad options fail before any download
    from actionclip.loading.identity import fingerprint

    # Weights made under a caller's inference_mode would be inference tensors, which autograd refuses
    # later (training, or a forward with grad enabled): build them as ordinary tensors whatever the mode.
    with torch.inference_mode(False):
        path = resolve(name_or_path)
        model = build_model(read_checkpoint(path), spec=spec, frames=frames)
        # What the weights are, for caches and indexes (loading/identity.py): the registry's verified
        # hash, else a cheap key of the file (size, mtime, first and last MiB).
        model.identify(name=spec.name if spec is not None else None, source=str(path),
                       fingerprint=f"sha256:{spec.sha256}" if spec is not None and spec.sha256 else fingerprint(path))
        return model.to(device=choice.device, dtype=choice.torch_dtype).eval()
