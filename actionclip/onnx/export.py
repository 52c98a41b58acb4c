"""Export an ActionCLIP model to three ONNX graphs in the layout of ailia's published ActionCLIP.

``{stem}-image_clip.onnx``  ``images`` float32 [B*T, 3, R, R]  -> ``image_features`` [B*T, D]
``{stem}-text_clip.onnx``   ``tokens`` int64 [N, L<=77]        -> ``text_features`` [N, D]
``{stem}-fusion.onnx``      ``frame_features`` float32 [B, T, D] -> ``fused_image_features`` [B, D]
``{stem}.json``             what the runtime needs besides the graphs: frames, fusion kind,
                            resolution, logit scale, context length, normalisation constants.

Batch axes are dynamic; the text graph's sequence axis is dynamic too (the encoder is causal and
pools at the end token, so a batch may be cut after its longest prompt, which the ONNX backend does:
same result, several times less work). None of the three outputs is L2-normalised, as in ailia's
graphs.

Export uses the TorchScript exporter (``dynamo=False``): it handles dynamic axes on this model
without guards, and produces plain opset-17 graphs that ONNX Runtime and ailia load. With ``int8``,
``onnxruntime.quantization.quantize_dynamic`` also writes ``{stem}-*.int8.onnx`` (weights int8,
activations quantised per batch at run time) and the JSON records their accuracy drift against
the fp32 graphs on random inputs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from actionclip.errors import OutputError, UsageError

if TYPE_CHECKING:
    from actionclip.model.actionclip import ActionCLIP
    from actionclip.model.base import VideoTextModel

FORMAT = "actionclip-onnx"
FORMAT_VERSION = 1
OPSET = 17
GRAPHS = ("image_clip", "text_clip", "fusion")
INPUT_NAMES = {"image_clip": "images", "text_clip": "tokens", "fusion": "frame_features"}
OUTPUT_NAMES = {"image_clip": "image_features", "text_clip": "text_features", "fusion": "fused_image_features"}


class _TextGraph(nn.Module):
    def __init__(self, model: ActionCLIP):
        super().__init__()
        self.text = model.clip.text

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text(tokens)


class _ImageGraph(nn.Module):
    def __init__(self, model: ActionCLIP):
        super().__init__()
        self.visual = model.clip.visual

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual(images)


class _FusionGraph(nn.Module):
    def __init__(self, model: ActionCLIP):
        super().__init__()
        self.fusion = model.fusion

    def forward(self, frame_features: torch.Tensor) -> torch.Tensor:
        return self.fusion(frame_features)


@dataclass
class ExportResult:
    """Where the graphs went, and (with int8) how far the quantised graphs drift."""

    directory: Path
    metadata_path: Path
    files: dict[str, Path]
    int8_files: dict[str, Path] | None
    int8_drift: dict[str, float] | None
    seconds: float


def default_stem(model: VideoTextModel) -> str:
    """``vit-b-32-8f`` for a registry model, else the checkpoint file's stem."""
    name = str(model.name or "actionclip")
    return Path(name).stem if "." in name else name


def _export_graph(module: nn.Module, example: torch.Tensor, path: Path, graph: str, dynamic: dict) -> None:
    # The TorchScript exporter warns about tracing a Python int (shape arithmetic) once per export;
    # shapes are symbolic in the graph regardless, which the round-trip tests check.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), str(path),
            input_names=[INPUT_NAMES[graph]], output_names=[OUTPUT_NAMES[graph]],
            dynamic_axes=dynamic, opset_version=OPSET, do_constant_folding=True, dynamo=False,
        )


def export_onnx(
    model: VideoTextModel,
    directory: str | os.PathLike,
    *,
    stem: str | None = None,
    int8: bool = False,
    check: bool = True,
) -> ExportResult:
    """Write the three graphs + metadata JSON of ``model`` (an :class:`actionclip.ActionCLIP`) to
    ``directory``. Files appear atomically: each is written to a temporary folder beside them first,
    and the JSON - which the backend reads first - is moved in last.

    ``check`` runs ``onnx.checker`` on each graph. ``int8`` also writes dynamically quantised graphs
    and measures their drift (:func:`int8_drift`).
    """
    import onnx

    refusal = model.onnx_export_error  # a family whose graphs would not be these three
    if refusal:
        raise UsageError(f"{model.name or type(model).__name__}: {refusal}")
    started = time.perf_counter()
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"{directory}: exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{directory}: cannot create the folder ({exc.strerror or exc})") from None
    stem = stem or default_stem(model)
    # Export in fp32 on CPU whatever the model runs in: ONNX Runtime's CPU kernels are fp32, and the
    # parity contract (<= 1e-4) is against the fp32 torch model.
    # Past the refusal every family left is ActionCLIP-shaped (the three graphs below).
    model = _fp32_cpu_copy(cast("ActionCLIP", model))
    r, t, d = model.input_resolution, model.num_frames, model.embed_dim
    examples = {
        "image_clip": torch.zeros(2, 3, r, r),
        "text_clip": _example_tokens(model.context_length),
        "fusion": torch.zeros(2, t, d),
    }
    modules = {"image_clip": _ImageGraph(model), "text_clip": _TextGraph(model), "fusion": _FusionGraph(model)}
    dynamic = {
        "image_clip": {"images": {0: "frames"}, "image_features": {0: "frames"}},
        "text_clip": {"tokens": {0: "texts", 1: "length"}, "text_features": {0: "texts"}},
        # T is fixed: Transf/Transf_cls heads are built for the model's frame count.
        "fusion": {"frame_features": {0: "videos"}, "fused_image_features": {0: "videos"}},
    }
    names = {g: f"{stem}-{g}.onnx" for g in GRAPHS}
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=directory))
    try:
        with torch.inference_mode(False), torch.no_grad():
            for graph in GRAPHS:
                path = tmp / names[graph]
                _export_graph(modules[graph].eval(), examples[graph], path, graph, dynamic[graph])
                if check:
                    onnx.checker.check_model(str(path))
        int8_names, drift = None, None
        if int8:
            int8_names = {g: f"{stem}-{g}.int8.onnx" for g in GRAPHS}
            for graph in GRAPHS:
                quantize_int8(tmp / names[graph], tmp / int8_names[graph])
            drift = int8_drift({g: tmp / n for g, n in names.items()}, {g: tmp / n for g, n in int8_names.items()},
                               model_info(model))
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            **model_info(model),
            "name": model.name or stem,
            "opset": OPSET,
            "files": names,
            "int8_files": int8_names,
            "int8_drift": drift,
            "inputs": INPUT_NAMES,
            "outputs": OUTPUT_NAMES,
        }
        meta_name = f"{stem}.json"
        (tmp / meta_name).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        moved = [*names.values(), *(int8_names or {}).values(), meta_name]
        for name in moved:
            os.replace(tmp / name, directory / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(
        directory=directory,
        metadata_path=directory / meta_name,
        files={g: directory / n for g, n in names.items()},
        int8_files={g: directory / n for g, n in int8_names.items()} if int8_names else None,
        int8_drift=drift,
        seconds=time.perf_counter() - started,
    )


def model_info(model: ActionCLIP) -> dict[str, Any]:
    """The label-free facts a runtime needs: shapes, fusion, temperature, and the model's whole
    :class:`~actionclip.model.config.ModelConfig` (preprocessing, templates, sampling), so that the
    backend prepares and scores exactly as the torch model. ``mean``/``std``/``resize_short`` repeat
    the config's numbers at the top level, where ailia's sample reads them."""
    prep = model.config.preprocessing
    return {
        "frames": int(model.num_frames),
        "fusion": model.fusion_type,
        "resolution": int(model.input_resolution),
        "embed_dim": int(model.embed_dim),
        "context_length": int(model.context_length),
        "logit_scale": float(model.logit_scale.detach()),  # exp'ed and capped, as model.probabilities uses it
        "mean": list(prep.mean),
        "std": list(prep.std),
        "resize_short": prep.short_side(1),
        "config": model.config.to_dict(),
    }


def _fp32_cpu_copy(model: ActionCLIP) -> ActionCLIP:
    if model.dtype == torch.float32 and model.device.type == "cpu":
        return model.eval()
    import copy

    return copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()


def _example_tokens(context_length: int) -> torch.Tensor:
    from actionclip.text.tokenizer import tokenize

    return tokenize(["a video of action", "Doing a kind of action, dancing"], context_length=context_length)


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of the MatMul/Gemm weights (activations stay float between ops)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # quantize_dynamic logs a generic "consider pre-processing" hint at WARNING on the root logger.
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])


def int8_drift(fp32: dict[str, Path], int8: dict[str, Path], info: dict[str, Any], seed: int = 0,
               labels: int = 10) -> dict[str, float]:
    """How far the int8 graphs move the outputs on random inputs (random weights, so a pessimistic
    stand-in for real ones): max abs difference of L2-normalised embeddings per graph, and of the
    final label probabilities (video of random pixels vs ``labels`` random-token prompts)."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    r, t = info["resolution"], info["frames"]
    images = rng.standard_normal((2 * t, 3, r, r)).astype(np.float32)
    tokens = np.zeros((labels, info["context_length"]), dtype=np.int64)
    tokens[:, 0] = 49406
    tokens[:, 1:6] = rng.integers(1, 49000, size=(labels, 5))
    tokens[:, 6] = 49407

    def run(paths: dict[str, Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sess = {g: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for g, p in paths.items()}
        frames = sess["image_clip"].run(None, {"images": images})[0]
        video = sess["fusion"].run(None, {"frame_features": frames.reshape(2, t, -1)})[0]
        text = sess["text_clip"].run(None, {"tokens": tokens})[0]
        return frames, video, text

    from actionclip.model import scoring

    def unit(x: np.ndarray) -> np.ndarray:
        return scoring.NUMPY.l2(x)

    def probs(video: np.ndarray, text: np.ndarray) -> np.ndarray:
        return scoring.probabilities(scoring.cosine_logits(video, text[None], info["logit_scale"]))

    f32, q8 = run(fp32), run(int8)
    return {
        "image_features": float(np.abs(unit(f32[0]) - unit(q8[0])).max()),
        "fused_image_features": float(np.abs(unit(f32[1]) - unit(q8[1])).max()),
        "text_features": float(np.abs(unit(f32[2]) - unit(q8[2])).max()),
        "probabilities": float(np.abs(probs(*f32[1:]) - probs(*q8[1:])).max()),
        "top1_agreement": float((probs(*f32[1:]).argmax(-1) == probs(*q8[1:]).argmax(-1)).mean()),
    }
