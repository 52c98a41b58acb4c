"""The contract every video-text model keeps, and the pipeline built on it, written once.

A model (ActionCLIP, CLIP, X-CLIP, ... in torch, or an ONNX export run by ONNX Runtime) provides a
few primitives:

* ``config``: a :class:`~actionclip.model.config.ModelConfig` (frames, preprocessing, templates);
* ``encode_video(pixels [B, T, 3, R, R]) -> features`` (a tensor ``[B, D]``, or
  :class:`~actionclip.model.scoring.VideoFeatures`);
* ``encode_tokens(ids [N, C]) -> [N, D]`` text embeddings (not normalised);
* ``logits(features, label_features) -> [B, V, K, L]`` (a plain cosine unless the model conditions
  its text on the video);
* ``frame_independent``: whether a frame's embedding depends only on that frame, so that a timeline
  may encode each frame once and fuse windows from the cache (``encode_image`` + ``fuse``); models
  whose frames talk to each other inside the image tower (X-CLIP, Open-VCLIP) encode each window;
* the backend: ``ops`` (torch or numpy arithmetic, :class:`~actionclip.model.scoring.ArrayOps`),
  ``from_numpy(array)`` (an array into the backend), ``inference()`` (a context without autograd),
  ``device``, ``dtype``, ``dtype_name``, ``on_gpu``;
* what it is: ``name``, ``family``, ``source`` (the file it was read from), ``fingerprint``.

:class:`VideoTextModel` is that contract, written down and typed: everything a caller outside
``model/`` may use is a public attribute or method here, with a default for backends that have
nothing to say (a numpy backend runs on the CPU in fp32). It turns the primitives into what users
call: ``prepare_video`` (video -> normalised views, :class:`actionclip.video.views.VideoViews`),
``encode_text``, ``encode_labels``, ``probabilities`` and ``classify``; torch-free, so the ONNX
backend inherits it as is. ``timeline`` and ``watch`` are workflows of the layer above
(:mod:`actionclip.temporal`), reached through :mod:`actionclip.model.conveniences` so that nothing
here imports upward.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from actionclip.model.config import ModelConfig
from actionclip.model.scoring import (
    NUMPY,
    ArrayOps,
    CosineScorer,
    VideoFeatures,
    cosine_logits,
    map_features,
    probabilities,
)
from actionclip.text.labels import check_labels
from actionclip.text.templates import resolve_templates

if TYPE_CHECKING:
    from actionclip.video.views import VideoViews

__all__ = ["VideoTextModel", "TEXT_BATCH"]

# Prompts per text-encoder call: large enough to keep the matmuls efficient, small enough that 6,400
# Kinetics prompts do not hold a 6,400-row activation at once.
TEXT_BATCH = 256


class VideoTextModel:
    """The model contract and its shared half; see the module notes for what a subclass provides."""

    config: ModelConfig
    #: the registry name (set by :func:`actionclip.load`), or the file's name; None = unnamed
    name: str | None = None
    #: the family that built it (``actionclip``, ``xclip``, ``vificlip``, ``openvclip``, ``froster``)
    family: str | None = None
    #: where the weights were read from (a path), None when unknown
    source: str | None = None
    _context_length: int = 77
    #: why this model cannot be exported to ONNX (None: it can)
    onnx_export_error: str | None = None
    #: what the weights are (set by actionclip.load; see actionclip.loading.identity): None = unknown,
    #: and then nothing derived from the weights is cached across runs
    fingerprint: str | None = None
    frame_independent: bool = True
    #: whether encode_labels gives one row per template, each depending on that template alone (the
    #: label cache shares rows across template sets then)
    label_features_per_template: bool = True
    #: whether logits are the plain scaled cosine (then probabilities may take the streamed form)
    cosine_scoring: bool = True
    #: the array arithmetic of this backend (torch or numpy)
    ops: ArrayOps = NUMPY

    def __init__(self, *, name: str | None = None, source: str | None = None,
                 fingerprint: str | None = None) -> None:
        self.name = name
        self.source = source
        self.fingerprint = fingerprint

    def identify(self, *, name: str | None = None, source: str | None = None,
                 fingerprint: str | None = None) -> None:
        """Say what the weights are (the loader does, once it knows): the registry name, the file,
        the fingerprint caches and indexes key on. ``None`` leaves a field as it is."""
        if name is not None:
            self.name = name
        if source is not None:
            self.source = source
        if fingerprint is not None:
            self.fingerprint = fingerprint

    # --- what the config says ---------------------------------------------------------------------

    @property
    def context_length(self) -> int:
        """Tokens per prompt the text encoder takes (CLIP's 77 unless the weights say otherwise)."""
        return self._context_length

    @property
    def num_frames(self) -> int:
        return self.config.frames

    @property
    def input_resolution(self) -> int:
        return self.config.preprocessing.resolution

    @property
    def preprocessing(self):
        return self.config.preprocessing

    @property
    def templates(self) -> list[str]:
        """The prompt templates labels are embedded in unless others are given."""
        return list(self.config.templates)

    # --- the backend (torch overrides it) --------------------------------------------------------

    def from_numpy(self, array: np.ndarray, *, on_device: bool = False) -> Any:
        """A numpy array as this backend's array: on the CPU (the model moves its inputs itself), or
        on the model's device with ``on_device`` (for arrays scored outside the model's methods)."""
        return array

    def inference(self) -> contextlib.AbstractContextManager[Any]:
        """A context in which the model runs without recording gradients."""
        return contextlib.nullcontext()

    @property
    def device(self) -> Any:
        """Where the model runs (a ``torch.device`` for torch models; ``"cpu"`` for numpy backends)."""
        return "cpu"

    @property
    def dtype(self) -> Any:
        """The weights' precision (a ``torch.dtype`` for torch models; ``"float32"`` for numpy backends)."""
        return "float32"

    @property
    def dtype_name(self) -> str:
        """The precision as the options name it: ``"fp32"``, ``"bf16"`` or ``"fp16"``."""
        return "fp32"

    @property
    def on_gpu(self) -> bool:
        """Whether the model runs on a GPU (batch sizes and decoding workers follow it)."""
        return False

    def bulk_score_dtype(self) -> Any:
        """The matmul precision for scoring a whole collection in one streamed pass, or None where
        this backend scores through :meth:`probabilities` only."""
        return None

    # --- video (what a subclass provides) ------------------------------------------------------------

    def encode_video(self, pixels: Any) -> Any:  # pragma: no cover - abstract
        """Normalised pixels ``[B, T, 3, R, R]`` -> video features ``[B, D]`` (or
        :class:`~actionclip.model.scoring.VideoFeatures`)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement encode_video")

    def encode_image(self, images: Any) -> Any:  # pragma: no cover - abstract
        """Frames ``[N, 3, R, R]`` -> frame embeddings ``[N, D]``: frame-independent models only."""
        raise NotImplementedError(f"{type(self).__name__}: only frame-independent models encode single frames")

    def fuse(self, frame_embeddings: Any) -> Any:  # pragma: no cover - abstract
        """Frame embeddings ``[B, T, D]`` -> video embeddings ``[B, D]``: frame-independent models only."""
        raise NotImplementedError(f"{type(self).__name__}: only frame-independent models fuse frame embeddings")

    # --- text ------------------------------------------------------------------------------------

    def encode_tokens(self, tokens: Any) -> Any:  # pragma: no cover - abstract
        """Token ids ``[N, context_length]`` (numpy int64) -> text embeddings ``[N, D]``. A subclass
        also answers ``context_length``."""
        raise NotImplementedError

    def encode_text(self, texts: Sequence[str] | str) -> Any:
        """Full prompt strings -> text embeddings ``[N, D]`` (not L2-normalised)."""
        from actionclip.text.tokenizer import token_ids

        texts = [texts] if isinstance(texts, str) else list(texts)
        with self.inference():
            return self.encode_tokens(token_ids(texts, self.context_length))

    def encode_labels(self, labels: Sequence[str], templates: Sequence[str] | str | None = None) -> Any:
        """Every label inside every template -> label features ``[K templates, L labels, D]``:
        L2-normalised embeddings (unless the model says otherwise, see :meth:`_label_features`).

        ``templates``: a list, one template string, or None for the model's own (``model.templates``).
        """
        from actionclip.text.tokenizer import token_ids

        labels = check_labels(labels)
        templates = resolve_templates(templates=templates, default=self.config.templates)
        prompts = [t.format(label) for t in templates for label in labels]
        tokens = token_ids(prompts, self.context_length)
        # Batch prompts of similar length together: the text encoder stops at each batch's longest
        # prompt, so sorting by length saves the padding work (~1.5x for the 16 templates).
        order = np.argsort(tokens.argmax(axis=-1), kind="stable")
        ops = self.ops
        with self.inference():
            parts = [ops.float32(self.encode_tokens(tokens[order[i : i + TEXT_BATCH]]))
                     for i in range(0, len(prompts), TEXT_BATCH)]
            embeddings = ops.take_rows(ops.cat(parts), np.argsort(order, kind="stable"))
            return self._label_features(embeddings.reshape(len(templates), len(labels), -1))

    def _label_features(self, embeddings: Any) -> Any:
        """Text embeddings ``[K, L, D]`` -> the label features :meth:`logits` takes: L2-normalised
        here; a model that conditions the text on the video first (X-CLIP) keeps them as they are."""
        return self.ops.l2(embeddings)

    # --- scores ------------------------------------------------------------------------------------

    @property
    def logit_scale(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def logits(self, video_features: Any, label_features: Any) -> Any:
        """``logit_scale * cos`` per video, view, template and label: ``[B, V, K, L]``.

        ``video_features``: ``[B, D]`` or ``[B, V, D]`` (V views) from :meth:`encode_video`;
        ``label_features``: ``[K, L, D]`` from :meth:`encode_labels`."""
        return cosine_logits(video_features, label_features, float(self.logit_scale))

    def probabilities(self, video_features: Any, label_features: Any) -> Any:
        """Video features ``[B, ...]`` or ``[B, V, ...]`` and label features ``[K, L, D]`` -> ``[B, L]``:
        softmax over labels of ``logit_scale * cos`` per template and view, then the mean (in fp32)."""
        with self.inference():
            if self.cosine_scoring and self.ops.name == "torch" and not isinstance(video_features, VideoFeatures):
                return CosineScorer(label_features, float(self.logit_scale))(video_features)
            return probabilities(self.logits(video_features, label_features))

    # --- whole videos -----------------------------------------------------------------------------

    @property
    def views(self) -> VideoViews:
        """This model's video -> views step (picklable: decoding workers take it instead of the model)."""
        from actionclip.video.views import VideoViews

        return VideoViews(self.config.preprocessing, self.config.frames, self.config.sampling,
                          torch=self.ops.name == "torch")

    def prepare_video(
        self,
        video: Any,
        *,
        frames: int | None = None,
        clips: int = 1,
        crops: int = 1,
        mode: str | None = None,
        start: float | None = None,
        end: float | None = None,
        seed: int | None = None,
    ) -> Any:
        """A path, uint8 RGB frames ``[N, H, W, 3]``, or normalised pixels ``[T, 3, R, R]`` /
        ``[V, T, 3, R, R]`` -> normalised views ``[V, T, 3, R, R]`` (V = crops x clips).

        Decoded frames are sampled exactly as a file would be (``clips``, ``mode``, ``seed``);
        ``start``/``end`` apply to files. ``mode`` defaults to the model's test-time sampling
        (:class:`~actionclip.video.views.VideoViews`)."""
        return self.views(video, frames=frames, clips=clips, crops=crops, mode=mode, start=start, end=end,
                          seed=seed)

    def classify(
        self,
        video: Any,
        labels: Sequence[str],
        *,
        templates: Sequence[str] | str | None = None,
        label_embeddings: Any = None,
        **view_options: Any,
    ) -> list[tuple[str, float]]:
        """Rank ``labels`` for one video: ``[(label, probability), ...]``, highest first, all labels.

        ``video`` is anything :meth:`prepare_video` takes, with its ``view_options`` (``frames``,
        ``clips``, ``crops``, ``mode``, ``start``, ``end``, ``seed``): with several clips or crops the
        scores are averaged over the views. ``label_embeddings`` (from :meth:`encode_labels`) skips
        the text encoder when classifying many videos with the same labels."""
        labels = check_labels(labels)
        with self.inference():
            if label_embeddings is None:
                label_embeddings = self.encode_labels(labels, templates)
            pixels = self.prepare_video(video, **view_options)
            features = map_features(self.encode_video(pixels), lambda t, _: t[None])  # [1, V, ...]
            probs = self.ops.to_numpy(self.probabilities(features, label_embeddings))[0]
        return sorted(zip(labels, probs.tolist()), key=lambda pair: -pair[1])

    def timeline(self, video: Any, labels: Sequence[str], **options: Any) -> Any:
        """When each action happens in a long video: see :func:`actionclip.temporal.timeline.timeline`
        (a workflow of the layer above, registered in :mod:`actionclip.model.conveniences`)."""
        from actionclip.model.conveniences import workflow

        return workflow("timeline")(self, video, labels, **options)

    def watch(self, source: Any, labels: Sequence[str], **options: Any) -> Generator[Any, None, None]:
        """Follow a live stream: see :func:`actionclip.temporal.live.watch` (registered like :meth:`timeline`)."""
        from actionclip.model.conveniences import workflow

        return workflow("watch")(self, source, labels, **options)
