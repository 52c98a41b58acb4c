"""Named models: where each checkpoint lives, how to check it, and what it is.

The ActionCLIP entries are mmaction2's ports of the checkpoints released with the paper
(sallymmx/ActionCLIP); their accuracies are the single-view numbers mmaction2 reports for them
(8/16/32 frames sampled uniformly, one clip, one centre crop). The ``clip-*`` entries are bare OpenAI
CLIP image/text encoders, used zero-shot with mean pooling over frames (``meanP``).

OpenAI's download URLs carry the file's SHA-256 as their second-to-last path segment; mmaction2
publishes no checksum or size for its ports, so those fields are ``None`` and the downloader records
the hash of what it fetched instead.

ViFi-CLIP, Open-VCLIP and FROSTER publish their weights on SharePoint and Google Drive only, behind
pages rather than stable file URLs: their entries have no ``url`` and say in ``manual`` where to
fetch the file by hand (then load it by path, or save it in the cache under ``filename`` and load
it by name). Their ``zero_shot`` figures are their papers' (trained on Kinetics-400; UCF101 and
HMDB51 over the three splits, Kinetics-600 on the 220 new classes).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actionclip.errors import UsageError

__all__ = ["ModelSpec", "MODELS", "DEFAULT_MODEL", "list_models", "get_spec", "find_spec"]


@dataclass(frozen=True)
class ModelSpec:
    """One downloadable model.

    Attributes:
        name: registry name, e.g. ``"vit-b-32-8f"``.
        url: where the checkpoint is downloaded from.
        filename: the file's name in the cache directory.
        frames: frames sampled per clip (the fusion head's position table length for ``Transf``).
        fusion: temporal fusion head, ``"Transf"`` or ``"meanP"``.
        arch: CLIP backbone, e.g. ``"ViT-B/32"``.
        format: the file's format as published (``"mmaction2"``, ``"openai-clip"``, ``"xclip"``,
            ``"vificlip"``, ``"openvclip"``), for people reading the entry; the loader recognises
            every file from its contents and does not read it.
        sha256: expected SHA-256 of the file (lower-case hex), or ``None`` when unpublished.
        size_bytes: expected file size, or ``None`` when unknown.
        source: the page that documents the checkpoint.
        k400_top1: published Kinetics-400 top-1 accuracy (%) under ``views``, or ``None``.
        views: the test protocol behind ``k400_top1``.
        description: one line for ``actionclip models``.
        family: the model family that builds it (``"actionclip"`` for ActionCLIP and bare CLIP).
        zero_shot: published zero-shot top-1 (%) by benchmark: ``{"ucf101": .., "hmdb51": .., "k600": ..}``
            (K600: the 220 classes not in K400), as the model's paper reports them.
        licence: the weights' licence, as their publisher states it.
        hub_id: a Hugging Face Hub repository id; when set the file comes through ``huggingface_hub``
            (its cache and offline mode) instead of ``url``.
        manual: where and how to fetch a file by hand when no stable URL exists (Google Drive,
            SharePoint); ``url`` is then empty and loading by path is the way.
        config: overrides of the family's :class:`~actionclip.model.config.ModelConfig`, in its
            dict form (``{"templates": [...], "preprocessing": {"mean": ...}}``); plain data, so
            that this module stays importable without torch or numpy.
    """

    name: str
    url: str
    filename: str
    frames: int
    fusion: str
    arch: str
    format: str
    sha256: str | None = None
    size_bytes: int | None = None
    source: str = ""
    k400_top1: float | None = None
    views: str = ""
    description: str = ""
    family: str = "actionclip"
    config: Mapping[str, Any] = field(default_factory=dict)
    zero_shot: Mapping[str, float] = field(default_factory=dict)
    licence: str = ""
    hub_id: str | None = None
    manual: str = ""


_MMACTION_BASE = "https://download.openmmlab.com/mmaction/v1.0/projects/actionclip"
_MMACTION_SOURCE = "https://github.com/open-mmlab/mmaction2/tree/main/projects/actionclip"
_OPENAI_BASE = "https://openaipublic.azureedge.net/clip/models"
_OPENAI_SOURCE = "https://github.com/openai/CLIP/blob/main/clip/clip.py"


def _mmaction(patch: int, frames: int, top1: float, zero_shot: Mapping[str, float] | None = None) -> ModelSpec:
    name = f"vit-b-{patch}-{frames}f"
    config = f"actionclip_vit-base-p{patch}-res224-clip-pre_1x1x{frames}_k400-rgb"
    return ModelSpec(
        name=name,
        url=f"{_MMACTION_BASE}/{config}/{name}.pth",
        filename=f"{name}.pth",
        frames=frames,
        fusion="Transf",
        arch=f"ViT-B/{patch}",
        format="mmaction2",
        source=_MMACTION_SOURCE,
        k400_top1=top1,
        views=f"1 clip x 1 centre crop, {frames} frames",
        description=f"ActionCLIP ViT-B/{patch}, {frames} frames, Transformer fusion, "
        "fine-tuned on Kinetics-400 (mmaction2 port of the released checkpoint)",
        zero_shot=dict(zero_shot or {}),
        licence="Apache-2.0 (mmaction2's port; the original weights: MIT, sallymmx/ActionCLIP)",
    )


def _openai(arch: str, sha256: str, size_bytes: int | None) -> ModelSpec:
    filename = arch.replace("/", "-") + ".pt"
    return ModelSpec(
        name="clip-" + arch.lower().replace("/", "-"),
        url=f"{_OPENAI_BASE}/{sha256}/{filename}",
        filename=filename,
        frames=8,
        fusion="meanP",
        arch=arch,
        format="openai-clip",
        sha256=sha256,
        size_bytes=size_bytes,
        source=_OPENAI_SOURCE,
        description=f"bare OpenAI CLIP {arch} (TorchScript archive), frames averaged (meanP); "
        "zero-shot baseline, not trained on video",
        licence="MIT (openai/CLIP)",
    )


_VIFI_SOURCE = "https://github.com/muzairkhattak/ViFi-CLIP"
_VIFI_SHAREPOINT = "https://mbzuaiac-my.sharepoint.com/:u:/g/personal/uzair_khattak_mbzuai_ac_ae/"
_OPENVCLIP_SOURCE = "https://github.com/wengzejia1/Open-VCLIP"
_OPENVCLIP_DRIVE = "https://drive.google.com/drive/folders/1VhwPFESkrr9Ed40yU5NEPIkrGIf6WQ9N"
_FROSTER_SOURCE = "https://github.com/Visual-AI/FROSTER"
_NO_LICENCE = "none stated (the repository has no licence file)"


def _vificlip(name: str, frames: int, share: str, row: str, **facts) -> ModelSpec:
    return ModelSpec(
        name=name, url="", filename=f"{name}.pth", frames=frames, fusion="meanP", arch="ViT-B/16",
        format="vificlip", family="vificlip", source=_VIFI_SOURCE, licence=_NO_LICENCE,
        manual=f"SharePoint, the {row} row of the README's model zoo: {_VIFI_SHAREPOINT}{share}",
        **facts,
    )


def _openvclip(arch: str, zero_shot: dict[str, float]) -> ModelSpec:
    tag = arch.replace("ViT-", "").replace("/", "").lower()  # "b16"
    return ModelSpec(
        name=f"openvclip-{tag}", url="", filename=f"openvclip-{tag}.pth", frames=8, fusion="meanP", arch=arch,
        format="openvclip", family="openvclip", source=_OPENVCLIP_SOURCE, zero_shot=zero_shot,
        licence=_NO_LICENCE, views="3 clips x 1 crop, 8 frames (dense, stride 16)",
        manual=f"Google Drive folder {_OPENVCLIP_DRIVE} (the {arch} checkpoint, swa_2_22.pth)",
        description=f"Open-VCLIP {arch}: CLIP with neighbour-frame attention, trained on Kinetics-400 and "
        "interpolated with OpenAI CLIP at load time",
    )


# --- X-CLIP (microsoft/VideoX, Ni et al. 2022) ---------------------------------------------------
# Each entry comes from its Hugging Face repository (microsoft/xclip-*, converted from the release
# files) through huggingface_hub; without it, from the GitHub release file when there is one (the
# L/14 originals are on Google Drive only). Figures are the X-CLIP README's / paper's: K400 and K600
# top-1 with 4 clips x 3 crops, few-shot top-1 with 32 frames, zero-shot with 32 frames, 1 view.
# The family's ModelConfig (ImageNet mean/std, bilinear, bare-label prompt) comes with it.
_XCLIP_RELEASE = "https://github.com/nbl97/X-CLIP_Model_Zoo/releases/download/v1.0"
_XCLIP_SOURCE = "https://github.com/microsoft/VideoX/tree/master/X-CLIP"


def _xclip(name: str, hub: str, release: str | None, arch: str, frames: int, what: str,
           k400_top1: float | None = None, zero_shot: Mapping[str, float] | None = None) -> ModelSpec:
    views = "4 clips x 3 crops" if k400_top1 is not None else ""
    return ModelSpec(
        name=name, url=f"{_XCLIP_RELEASE}/{release}" if release else "", filename=f"xclip-{release or name + '.pth'}",
        frames=frames, fusion="mit", arch=arch, format="xclip", source=_XCLIP_SOURCE, k400_top1=k400_top1,
        views=views, description=f"X-CLIP {arch}, {frames} frames, {what}", family="xclip",
        zero_shot=dict(zero_shot or {}), licence="MIT", hub_id=f"microsoft/{hub}",
    )


def _xclip_few_shot(dataset: str, shots: int, top1: float) -> ModelSpec:
    name = {"hmdb": "HMDB-51", "ucf": "UCF-101"}[dataset]
    return _xclip(f"xclip-b-16-{dataset}-{shots}shot", f"xclip-base-patch16-{dataset}-{shots}-shot",
                  f"few_{dataset}_{shots}.pth", "ViT-B/16", 32,
                  f"K400 then {shots}-shot {name} ({top1} top-1 on {name})")


_XCLIP_MODELS = (
    _xclip("xclip-b-16-zero-shot", "xclip-base-patch16-zero-shot", "zero.pth", "ViT-B/16", 32,
           "trained on Kinetics-400 for zero-shot use", zero_shot={"ucf101": 72.0, "hmdb51": 44.6, "k600": 65.2}),
    _xclip("xclip-b-32-8f", "xclip-base-patch32", "k400_32_8.pth", "ViT-B/32", 8, "Kinetics-400", 80.4),
    _xclip("xclip-b-32-16f", "xclip-base-patch32-16-frames", "k400_32_16.pth", "ViT-B/32", 16, "Kinetics-400", 81.1),
    _xclip("xclip-b-16-8f", "xclip-base-patch16", "k400_16_8.pth", "ViT-B/16", 8, "Kinetics-400", 83.8),
    _xclip("xclip-b-16-16f", "xclip-base-patch16-16-frames", "k400_16_16.pth", "ViT-B/16", 16, "Kinetics-400", 84.7),
    _xclip("xclip-l-14-8f", "xclip-large-patch14", None, "ViT-L/14", 8, "Kinetics-400", 87.1),
    _xclip("xclip-l-14-16f-336", "xclip-large-patch14-16-frames", None, "ViT-L/14", 16,
           "336 px, Kinetics-400", 87.7),
    _xclip("xclip-b-16-k600-8f", "xclip-base-patch16-kinetics-600", "k600_16_8.pth", "ViT-B/16", 8,
           "Kinetics-600 (85.3 top-1 on K600)"),
    _xclip("xclip-b-16-k600-16f", "xclip-base-patch16-kinetics-600-16-frames", "k600_16_16.pth", "ViT-B/16", 16,
           "Kinetics-600 (85.8 top-1 on K600)"),
    _xclip("xclip-l-14-k600-8f", "xclip-large-patch14-kinetics-600", None, "ViT-L/14", 8,
           "Kinetics-600 (88.3 top-1 on K600)"),
    _xclip_few_shot("hmdb", 2, 53.0),
    _xclip_few_shot("hmdb", 4, 57.3),
    _xclip_few_shot("hmdb", 8, 62.8),
    _xclip_few_shot("hmdb", 16, 64.0),
    _xclip_few_shot("ucf", 2, 76.4),
    _xclip_few_shot("ucf", 4, 83.4),
    _xclip_few_shot("ucf", 8, 88.3),
    _xclip_few_shot("ucf", 16, 91.4),
)

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _mmaction(32, 8, 77.6),
        _mmaction(16, 8, 80.3),
        _mmaction(16, 16, 81.1),
        # ActionCLIP's zero-shot figures as the ViFi-CLIP paper reports them (B/16, 32 frames, K400-trained)
        _mmaction(16, 32, 81.3, zero_shot={"ucf101": 58.3, "hmdb51": 40.8, "k600": 66.7}),
        _openai("ViT-B/32", "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", 353976522),
        _openai("ViT-B/16", "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f", 350837078),
        # Open-VCLIP L/14 interpolates with it; OpenAI publishes no size (its SHA-256 is in the URL).
        _openai("ViT-L/14", "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836", None),
        _vificlip("vificlip-b16-k400", 32, "EW0shb6XYDxFi3BH6DT70rgBPDwgW_knQ8jDsarxINXezw?e=RbixXc",
                  "zero-shot 'ViFi-CLIP'", zero_shot={"ucf101": 76.8, "hmdb51": 51.3, "k600": 71.2},
                  views="1 clip x 1 crop, 32 frames",
                  description="ViFi-CLIP ViT-B/16: CLIP fully fine-tuned on Kinetics-400 (32 frames, mean "
                  "pooling); the zero-shot model (vifi_clip_10_epochs_k400_full_finetuned.pth)"),
        _vificlip("vificlip-b16-k400-supervised", 16, "EfqisYTGKlVIiPI0QHG-pxMBuBMA0906jX_kPpaRGw9Ksw?e=TdbaBU",
                  "fully-supervised 'ViFi-CLIP'", k400_top1=83.9, views="4 clips x 3 crops, 16 frames",
                  description="ViFi-CLIP ViT-B/16 fine-tuned on Kinetics-400 for closed-set K400 "
                  "(16 frames, mean pooling)"),
        _openvclip("ViT-B/16", {"ucf101": 83.4, "hmdb51": 53.9, "k600": 73.0}),
        _openvclip("ViT-L/14", {"ucf101": 87.9, "hmdb51": 58.3, "k600": 81.1}),
        ModelSpec(
            name="froster-b16", url="", filename="froster-b16.pth", frames=8, fusion="meanP", arch="ViT-B/16",
            format="openvclip", family="froster", source=_FROSTER_SOURCE,
            zero_shot={"ucf101": 84.8, "hmdb51": 54.8, "k600": 74.8}, licence="CC BY-NC-SA 4.0",
            views="3 clips x 1 crop, 8 frames (dense, stride 16)",
            manual="Google Drive, the README's 'Checkpoint' section: "
            "https://drive.google.com/file/d/1PzlGbx1664oHDrqwdAKsfydBRoKkb_ea/view",
            description="FROSTER ViT-B/16: Open-VCLIP's model distilled from frozen CLIP, trained on "
            "Kinetics-400; best with its rephrased class names",
        ),
        *_XCLIP_MODELS,
    )
}

DEFAULT_MODEL = "vit-b-32-8f"


def list_models() -> list[ModelSpec]:
    """All registered models, default first, in registry order."""
    return list(MODELS.values())


def get_spec(name: str, registry: dict[str, ModelSpec] | None = None) -> ModelSpec:
    """The spec registered as ``name`` (case-insensitive), or whose Hugging Face ``hub_id`` it is.

    Raises:
        UsageError: unknown name; the message suggests close matches and lists every name.
    """
    models = MODELS if registry is None else registry
    spec = models.get(name) or models.get(name.strip().lower())
    if spec is not None:
        return spec
    by_hub_id = {s.hub_id.lower(): s for s in models.values() if s.hub_id}
    if name.strip().lower() in by_hub_id:  # "microsoft/xclip-base-patch32" names its entry too
        return by_hub_id[name.strip().lower()]
    close = difflib.get_close_matches(name.strip().lower(), list(models), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise UsageError(
        f"unknown model {name!r}: {hint}known models: {', '.join(models)} "
        "(or give the path of a checkpoint file or folder)"
    )


def find_spec(name: str) -> ModelSpec | None:
    """The spec registered as ``name``, or None (the downloader reports unknown names with hints)."""
    try:
        return get_spec(name)
    except UsageError:
        return None
