"""Run exported ActionCLIP graphs with ONNX Runtime and numpy only: torch is never imported here.

``load(directory)`` reads the JSON written by :mod:`actionclip.onnx_export` and returns an
:class:`OnnxActionCLIP` with the methods of :class:`actionclip.ActionCLIP` that the CLI uses
(``encode_image``, ``fuse``, ``encode_video``, ``encode_text``, ``encode_labels``, ``probabilities``,
``classify``), taking and returning numpy arrays.

Everything on this path is torch-free: the tokenizer's BPE (:class:`actionclip.tokenizer
.SimpleTokenizer`), PyAV decoding (:mod:`actionclip.video`), templates, and the preprocessing below,
a numpy port of :func:`actionclip.preprocess.preprocess_frames`. The antialiased bicubic resize is
built as two small weight matrices (the same kernel and support PyTorch and PIL use), so resizing is
two matrix products per frame, restricted to the rows and columns the centre crop keeps. It matches
the torch path to float rounding: after the 8-bit rounding step a pixel occasionally lands on the
other side of .5 (a difference of one grey level, measured in tests/test_onnx.py).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from actionclip.errors import CheckpointError, UsageError

__all__ = ["OnnxActionCLIP", "load", "preprocess_frames", "tokenize", "find_metadata"]

_SOT, _EOT = 49406, 49407
TEXT_BATCH = 256


# --- preprocessing (numpy) ------------------------------------------------------------------------


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    # Keys' cubic with a = -0.5: the kernel PyTorch uses for antialiased bicubic, and PIL always.
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


@lru_cache(maxsize=64)
def resize_weights(in_size: int, out_size: int) -> np.ndarray:
    """[out_size, in_size] antialiased bicubic weights (PyTorch's ``_compute_indices_weights_aa``)."""
    scale = in_size / out_size
    support = 2.0 * scale if scale >= 1.0 else 2.0
    inv = 1.0 / scale if scale >= 1.0 else 1.0
    weights = np.zeros((out_size, in_size), dtype=np.float64)
    for i in range(out_size):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        w = _cubic((np.arange(lo, hi) - center + 0.5) * inv)
        total = w.sum()
        weights[i, lo:hi] = w / total if total != 0 else w
    return weights.astype(np.float32)


def _geometry(height: int, width: int, resolution: int, crops: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """Resized size and crop corners, the rules of :func:`actionclip.preprocess.resize_size` and
    :func:`~actionclip.preprocess.crop_boxes` (restated because that module imports torch; a test
    checks that both agree)."""
    short = round(resolution * 256 / 224) if crops == 1 else resolution
    scale = short / min(height, width)
    if height <= width:
        new_h, new_w = short, max(short, int(width * scale + 0.5))
    else:
        new_h, new_w = max(short, int(height * scale + 0.5)), short
    if crops == 1:
        return (new_h, new_w), [(int(round((new_h - resolution) / 2.0)), int(round((new_w - resolution) / 2.0)))]
    if crops != 3:
        raise UsageError(f"crops must be 1 or 3, got {crops}")
    along_width = new_w >= new_h
    across = int(round(((new_h if along_width else new_w) - resolution) / 2.0))
    span = (new_w if along_width else new_h) - resolution
    offsets = (0, span // 2, span)
    return (new_h, new_w), [(across, o) if along_width else (o, across) for o in offsets]


def preprocess_frames(frames: np.ndarray, resolution: int, crops: int = 1,
                      mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> np.ndarray:
    """uint8 RGB frames ``[..., H, W, 3]`` -> normalised float32 ``[..., 3, R, R]`` (``crops=3``:
    a leading axis of 3 views), numerically the torch path's :func:`actionclip.preprocess
    .preprocess_frames` (same short-side rule, crops, rounding, mean/std)."""
    mean = np.asarray(mean if mean is not None else _CLIP_MEAN, dtype=np.float32).reshape(3, 1, 1) * 255.0
    std = np.asarray(std if std is not None else _CLIP_STD, dtype=np.float32).reshape(3, 1, 1) * 255.0
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim < 3 or frames.shape[-1] != 3:
        raise UsageError(f"frames must be uint8 RGB [..., H, W, 3], got {frames.dtype} {frames.shape}")
    lead, (height, width) = frames.shape[:-3], frames.shape[-3:-1]
    x = frames.reshape(-1, height, width, 3).transpose(0, 3, 1, 2).astype(np.float32)  # [N, 3, H, W]
    (new_h, new_w), boxes = _geometry(height, width, resolution, crops)
    views = []
    for y, x0 in boxes:
        if (new_h, new_w) == (height, width):
            view = x[..., y : y + resolution, x0 : x0 + resolution]
        else:
            rows = resize_weights(height, new_h)[y : y + resolution]  # only the rows the crop keeps
            cols = resize_weights(width, new_w)[x0 : x0 + resolution]
            view = np.clip(np.round(rows @ (x @ cols.T)), 0, 255)
        view = (view - mean) / std
        views.append(view.reshape(*lead, 3, resolution, resolution).astype(np.float32))
    return views[0] if crops == 1 else np.stack(views)


_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# --- tokens (numpy) ---------------------------------------------------------------------------------


def tokenize(texts: Sequence[str], context_length: int = 77) -> np.ndarray:
    """int64 ``[N, context_length]`` ids, identical to :func:`actionclip.tokenizer.tokenize` (long
    texts truncated with the end token kept last), without torch."""
    from actionclip.tokenizer import default_tokenizer

    tok = default_tokenizer()
    out = np.zeros((len(texts), context_length), dtype=np.int64)
    for row, text in enumerate(texts):
        ids = [_SOT, *tok.encode(text)][: context_length - 1] + [_EOT]
        out[row, : len(ids)] = ids
    return out


# --- the model ------------------------------------------------------------------------------------


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


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class OnnxActionCLIP:
    """An exported ActionCLIP model run by ONNX Runtime: the torch model's interface, numpy in/out."""

    def __init__(self, metadata_path: Path, *, int8: bool = False, providers: Sequence[str] | None = None,
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
            self.num_frames = int(meta["frames"])
            self.fusion_type = meta["fusion"]
            self.input_resolution = int(meta["resolution"])
            self.embed_dim = int(meta["embed_dim"])
            self.context_length = int(meta["context_length"])
            self.logit_scale = float(meta["logit_scale"])
            self.mean, self.std = meta["mean"], meta["std"]
            self.inputs = dict(meta["inputs"])  # graph -> its input name
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{self.metadata_path}: incomplete ONNX metadata ({exc!r})") from None
        files = meta.get("int8_files") if int8 else meta.get("files")
        if not files:
            raise CheckpointError(f"{self.metadata_path}: export has no int8 graphs (export again with --int8)")
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
        self.precision = "int8" if int8 else "fp32"
        self.providers = self.sessions["image_clip"].get_providers()

    def __repr__(self) -> str:
        return (f"OnnxActionCLIP({self.name!r}, frames={self.num_frames}, fusion={self.fusion_type}, "
                f"{self.precision}, {self.providers[0]})")

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

    def encode_text(self, texts: Sequence[str] | str) -> np.ndarray:
        """Full prompt strings -> text embeddings [N, D] (not L2-normalised)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        return self.encode_tokens(tokenize(texts, self.context_length))

    def encode_labels(self, labels: Sequence[str], templates: Sequence[str] | str | None = None) -> np.ndarray:
        """Every label in every template -> L2-normalised embeddings [K templates, L labels, D]."""
        from actionclip.templates import check_labels, resolve_templates

        labels = check_labels(labels)
        templates = resolve_templates(templates=templates) if templates is not None else resolve_templates()
        prompts = [t.format(label) for t in templates for label in labels]
        # Sorting by length before batching keeps each batch's cut (see encode_tokens) short.
        tokens = tokenize(prompts, self.context_length)
        order = np.argsort(tokens.argmax(axis=1), kind="stable")
        out = np.empty((len(prompts), self.embed_dim), dtype=np.float32)
        for i in range(0, len(prompts), TEXT_BATCH):
            rows = order[i : i + TEXT_BATCH]
            out[rows] = self.encode_tokens(tokens[rows])
        return _l2(out).reshape(len(templates), len(labels), -1)

    def probabilities(self, video_embeddings: Any, label_embeddings: Any) -> np.ndarray:
        """Video embeddings [B, D] or [B, V, D] and label embeddings [K, L, D] -> [B, L]: softmax over
        labels of ``logit_scale * cos`` per template and view, then the mean."""
        video = np.asarray(video_embeddings, dtype=np.float32)
        video = _l2(video[:, None] if video.ndim == 2 else video)
        text = _l2(np.asarray(label_embeddings, dtype=np.float32))
        logits = self.logit_scale * np.einsum("bvd,kld->bvkl", video, text)
        return _softmax(logits).mean(axis=(1, 2))

    # --- whole videos -----------------------------------------------------------------------------

    def prepare_video(self, video: Any, *, frames: int | None = None, clips: int = 1, crops: int = 1,
                      mode: str = "center", start: float | None = None, end: float | None = None,
                      seed: int | None = None) -> np.ndarray:
        """A path, uint8 RGB frames [N, H, W, 3], or normalised pixels [T, 3, R, R] / [V, T, 3, R, R]
        -> normalised views [V, T, 3, R, R] (V = clips x crops), as ``ActionCLIP.prepare_video``."""
        frames = frames or self.num_frames
        if isinstance(video, (str, os.PathLike)):
            from actionclip.video import read_video

            raw = read_video(video, frames=frames, clips=clips, mode=mode, start=start, end=end, seed=seed)
        else:
            array = np.asarray(video)
            if np.issubdtype(array.dtype, np.floating):
                return (array if array.ndim == 5 else array[None]).astype(np.float32)
            if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
                raise UsageError(f"frames must be uint8 RGB [N, H, W, 3] (or normalised floats), got "
                                 f"{array.dtype} {array.shape}")
            if array.shape[0] != frames:
                from actionclip.video import sample_indices

                array = array[sample_indices(array.shape[0], frames, mode="center")]
            raw = array[None]
        pixels = preprocess_frames(raw, self.input_resolution, crops, self.mean, self.std)
        return pixels.reshape(-1, *pixels.shape[-4:])

    def classify(self, video: Any, labels: Sequence[str], *, templates: Sequence[str] | str | None = None,
                 frames: int | None = None, clips: int = 1, crops: int = 1, mode: str = "center",
                 start: float | None = None, end: float | None = None, seed: int | None = None,
                 label_embeddings: np.ndarray | None = None) -> list[tuple[str, float]]:
        """Rank ``labels`` for one video: [(label, probability), ...], highest first, all labels."""
        from actionclip.templates import check_labels

        labels = check_labels(labels)
        if label_embeddings is None:
            label_embeddings = self.encode_labels(labels, templates)
        pixels = self.prepare_video(video, frames=frames, clips=clips, crops=crops, mode=mode, start=start,
                                    end=end, seed=seed)
        embeddings = self.encode_video(pixels)  # [V, D]
        probs = self.probabilities(embeddings[None], label_embeddings)[0].tolist()
        return sorted(zip(labels, probs), key=lambda pair: -pair[1])


def load(directory: str | os.PathLike, *, int8: bool = False, providers: Sequence[str] | None = None,
         threads: int | None = None, spin: bool = False) -> OnnxActionCLIP:
    """Load an export written by ``actionclip export MODEL --onnx DIR`` (the folder or its JSON).

    ``int8``: the quantised graphs (``export --int8``). ``threads``: ORT intra-op threads (default:
    one per core). ``spin``: let ORT's idle workers busy-wait between runs (lowest latency when
    nothing else runs in the process; off by default, see the session options)."""
    return OnnxActionCLIP(find_metadata(directory), int8=int8, providers=providers, threads=threads, spin=spin)
