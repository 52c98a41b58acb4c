"""Run exported models with ONNX Runtime and numpy only: torch is never imported here.

``load(directory)`` reads the JSON written by :mod:`actionclip.onnx.export` and returns an
:class:`OnnxActionCLIP` running its fp32 graphs, or its int8 ones (``precision="int8"``; ``"auto"``
takes fp32 when the export holds them, else int8, so a folder shipped with the int8 graphs only
runs as it is; ``model.precision`` says which run): the graphs answer the primitives of the model contract (``encode_image``,
``fuse``, ``encode_video``, ``encode_tokens``), and everything else - preprocessing, tokenisation,
label embedding, scoring, ``classify``, timelines - is the torch model's own code
(:class:`actionclip.model.base.VideoTextModel`, torch-free), run on numpy arrays. The model's
:class:`~actionclip.model.config.ModelConfig` travels in the JSON, so a file preprocesses and scores
exactly as the model it was exported from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from actionclip.choices import ONNX_PRECISIONS
from actionclip.errors import CheckpointError, UsageError
from actionclip.model.base import VideoTextModel
from actionclip.model.config import ModelConfig
from actionclip.video.preprocess import Preprocessing

__all__ = ["OnnxActionCLIP", "load", "find_metadata"]


def find_metadata(directory: str | os.PathLike) -> Path:
    """The export's JSON in ``directory`` (or ``directory`` itself when it is that JSON)."""
    path = Path(directory)
    if path.is_file() and path.suffix == ".json":
        return path
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such ONNX export directory")
    found = []
    for candidate in sorted(path.glob("*.json")):
        try:
            if json.loads(candidate.read_text(encoding="utf-8")).get("format") == "actionclip-onnx":
                found.append(candidate)
        except (OSError, ValueError, AttributeError):
            continue
    if not found:
        raise CheckpointError(f"{path}: not an ActionCLIP ONNX export (no metadata JSON; run 'actionclip export')")
    if len(found) > 1:
        raise CheckpointError(f"{path}: holds several exports ({', '.join(p.name for p in found)}); pass the JSON")
    return found[0]


class OnnxActionCLIP(VideoTextModel):
    """An exported model run by ONNX Runtime: the torch model's interface, numpy in and out."""

    def __init__(self, metadata_path: Path, *, precision: str = "auto", providers: Sequence[str] | None = None,
                 threads: int | None = None, spin: bool = False):
        import onnxruntime as ort

        self.metadata_path = Path(metadata_path)
        try:
            meta = json.loads(self.metadata_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{self.metadata_path}: unreadable ONNX metadata ({exc})") from None
        if meta.get("format") != "actionclip-onnx":
            raise CheckpointError(f"{self.metadata_path}: not ActionCLIP ONNX metadata")
        self.meta = meta
        try:  # before the graphs load: a hand-edited or truncated JSON is one line, not a KeyError later
            self.name = meta.get("name")
            self.fusion_type = meta["fusion"]
            self.embed_dim = int(meta["embed_dim"])
            self.context_length = int(meta["context_length"])
            self._logit_scale = float(meta["logit_scale"])
            self.inputs = dict(meta["inputs"])  # graph -> its input name
            self.config = _config(meta)
        except (KeyError, TypeError, ValueError, UsageError) as exc:
            raise CheckpointError(f"{self.metadata_path}: incomplete ONNX metadata ({exc!r})") from None
        self.precision, files = _graphs(self.metadata_path, meta, precision)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        if not spin:
            # ORT's workers otherwise busy-wait after each run, competing for the cores with what
            # runs next in this process (decode and preprocessing threads of the pipeline).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = list(providers or ort.get_available_providers())
        # ORT would otherwise try every provider it was built with (Azure, ...), CPU last; keep CUDA
        # first when present and always fall back to CPU.
        providers = [p for p in providers if p in ("CUDAExecutionProvider", "CPUExecutionProvider")] or [
            "CPUExecutionProvider"]
        self.sessions = {}
        for graph, name in files.items():
            path = self.metadata_path.parent / name
            if not path.is_file():
                raise CheckpointError(f"{path}: graph missing from the ONNX export")
            try:
                self.sessions[graph] = ort.InferenceSession(str(path), options, providers=providers)
            except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
                raise CheckpointError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from None
        self.providers = self.sessions["image_clip"].get_providers()

    def __repr__(self) -> str:
        return (f"OnnxActionCLIP({self.name!r}, frames={self.num_frames}, fusion={self.fusion_type}, "
                f"{self.precision}, {self.providers[0]})")

    @property
    def logit_scale(self) -> float:
        return self._logit_scale

    def _run(self, graph: str, array: np.ndarray) -> np.ndarray:
        name = self.inputs[graph]
        return self.sessions[graph].run(None, {name: array})[0]

    # --- embeddings -------------------------------------------------------------------------------

    def encode_image(self, images: Any) -> np.ndarray:
        """Normalised images [N, 3, R, R] -> per-frame embeddings [N, D]."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        r = self.input_resolution
        if images.ndim != 4 or images.shape[1:] != (3, r, r):
            raise UsageError(f"images must be [N, 3, {r}, {r}], got {images.shape}")
        return self._run("image_clip", images)

    def fuse(self, frame_embeddings: Any) -> np.ndarray:
        """Frame embeddings [B, T, D] -> video embeddings [B, D]."""
        return self._run("fusion", np.ascontiguousarray(frame_embeddings, dtype=np.float32))

    def encode_video(self, pixels: Any) -> np.ndarray:
        """Normalised clips [B, T, 3, R, R] -> video embeddings [B, D] (not L2-normalised)."""
        pixels = np.asarray(pixels, dtype=np.float32)
        if pixels.ndim != 5:
            raise UsageError(f"pixels must be [B, T, 3, H, W], got shape {pixels.shape}")
        b, t = pixels.shape[:2]
        return self.fuse(self.encode_image(pixels.reshape(b * t, *pixels.shape[2:])).reshape(b, t, -1))

    def encode_tokens(self, tokens: Any) -> np.ndarray:
        """Token ids [N, L] -> text embeddings [N, D].

        The text encoder is causal and pools at the end token, so columns after the batch's last
        end token cannot change the result: they are cut (typically 77 -> ~12, a 6x saving)."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 2 or not 2 <= tokens.shape[1] <= self.context_length:
            raise UsageError(f"tokens must be [N, <= {self.context_length}], got {tokens.shape}")
        if tokens.shape[0] == 0:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        length = int(tokens.argmax(axis=1).max()) + 1
        return self._run("text_clip", np.ascontiguousarray(tokens[:, :length]))


def _graphs(metadata_path: Path, meta: dict[str, Any], precision: str) -> tuple[str, dict[str, str]]:
    """``(precision, graph -> file name)`` of the graphs to run (see the module notes)."""
    if precision not in ONNX_PRECISIONS:
        raise UsageError(f"precision {precision!r}: must be one of {', '.join(ONNX_PRECISIONS)}")
    listed = {"fp32": meta.get("files") or {}, "int8": meta.get("int8_files") or {}}
    if precision == "auto":
        present = [p for p, files in listed.items()
                   if files and all((metadata_path.parent / name).is_file() for name in files.values())]
        precision = present[0] if present else "fp32"  # none whole: loading fp32 names the missing graph
    if not listed[precision]:
        raise CheckpointError(f"{metadata_path}: the export has no {precision} graphs"
                              + (" (it was exported without int8 quantisation)" if precision == "int8" else ""))
    return precision, dict(listed[precision])


def _config(meta: dict[str, Any]) -> ModelConfig:
    """The export's ModelConfig; exports older than the config field carry only CLIP's constants."""
    if "config" in meta:
        return ModelConfig.from_dict(meta["config"])
    prep = Preprocessing(resolution=int(meta["resolution"]), mean=tuple(meta["mean"]), std=tuple(meta["std"]))
    return ModelConfig(frames=int(meta["frames"]), preprocessing=prep)


def load(directory: str | os.PathLike, *, precision: str = "auto", int8: bool = False,
         providers: Sequence[str] | None = None, threads: int | None = None, spin: bool = False) -> OnnxActionCLIP:
    """Load an export written by ``actionclip export MODEL --onnx DIR`` (the folder or its JSON).

    ``precision``: ``"fp32"``, ``"int8"`` (the quantised graphs written with ``int8=True``), or
    ``"auto"`` (fp32 when the export holds them, else int8); ``int8=True`` is
    ``precision="int8"``. ``threads``: ORT intra-op threads (default:
    one per core). ``spin``: let ORT's idle workers busy-wait between runs (lowest latency when
    nothing else runs in the process; off by default, see the session options)."""
    return OnnxActionCLIP(find_metadata(directory), precision="int8" if int8 else precision, providers=providers,
                          threads=threads, spin=spin)
