"""A small numpy video-text model for the index and label-cache tests.

It keeps the :class:`~actionclip.model.base.VideoTextModel` contract with cheap arithmetic, so tests
can count text-encoder calls, run in several processes at once, and, with ``tokens=True``, stand in
for a model whose text side depends on the video (X-CLIP): ``encode_video`` then returns
:class:`~actionclip.model.scoring.VideoFeatures` and ``logits`` shifts every label embedding by
the video's mean visual token before the cosine.
"""

from __future__ import annotations

import numpy as np

from actionclip.model.base import VideoTextModel
from actionclip.model.config import ModelConfig
from actionclip.model.scoring import VideoFeatures, cosine_logits
from actionclip.video.preprocess import Preprocessing

DIM = 16
RES = 8


class ToyModel(VideoTextModel):
    context_length = 77
    logit_scale = 50.0
    frame_independent = False

    def __init__(self, *, tokens: bool = False, seed: int = 0):
        self.config = ModelConfig(frames=4, preprocessing=Preprocessing(resolution=RES),
                                  templates=("a video of {}.", "{}"))
        rng = np.random.default_rng(seed)
        self.words = rng.standard_normal((49408, DIM)).astype(np.float32)
        self.pixels_to_dim = rng.standard_normal((3 * RES * RES, DIM)).astype(np.float32) / RES
        self.with_tokens = tokens
        self.fingerprint = f"toy-{seed}"
        self.name = "toy"
        self.prompts_encoded = 0

    def encode_tokens(self, tokens):
        self.prompts_encoded += len(tokens)
        ids = np.asarray(tokens)
        # Position-weighted bag of words: padding (id 0) adds nothing.
        weights = (ids > 0) * (1.0 + 0.1 * np.arange(ids.shape[1]))
        return np.einsum("nc,ncd->nd", weights, self.words[ids]).astype(np.float32)

    def encode_video(self, pixels):
        x = np.asarray(pixels, dtype=np.float32)  # [B, T, 3, R, R]
        frames = np.tanh(x.reshape(*x.shape[:2], -1) @ self.pixels_to_dim)  # [B, T, D]
        embedding = frames.mean(axis=1) + 0.1 * frames[:, 0]
        return VideoFeatures(embedding, frames) if self.with_tokens else embedding

    def logits(self, video_features, label_features):
        if not isinstance(video_features, VideoFeatures):
            return cosine_logits(video_features, label_features, self.logit_scale)
        emb, tokens = np.asarray(video_features.embedding), np.asarray(video_features.tokens)
        if emb.ndim == 2:
            emb, tokens = emb[:, None], tokens[:, None]
        text = np.asarray(label_features)[None, None] + 0.5 * tokens.mean(axis=2)[:, :, None, None]  # [B, V, K, L, D]
        emb = emb / np.linalg.norm(emb, axis=-1, keepdims=True)
        text = text / np.linalg.norm(text, axis=-1, keepdims=True)
        return self.logit_scale * np.einsum("bvd,bvkld->bvkl", emb, text)
