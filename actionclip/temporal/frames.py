"""Frames to window units, each frame preprocessed and encoded once, in constant memory.

Grid frames (:mod:`actionclip.temporal.plan`) arrive in order; :class:`FrameEncoder` preprocesses
each one as it arrives (the full-size frame is dropped) and, for a model whose frames are encoded
independently (``model.frame_independent``), encodes them in batches with the image encoder: a frame
shared by overlapping windows is encoded once. A model whose frames interact inside its image tower
(X-CLIP's cross-frame tokens, Open-VCLIP's neighbour attention) cannot be cached that way: its units
stay pixels and each window is encoded whole by :class:`~actionclip.temporal.windows.WindowScorer`.
:func:`iter_windows` keeps only the units the next window needs (a ring buffer), so memory does not
grow with the video's length. Torch-free: the model's backend does the arithmetic.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from actionclip.temporal.plan import SamplingPlan

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel

__all__ = ["FrameEncoder", "iter_windows"]


class FrameEncoder:
    """Preprocesses frames one at a time; encodes them in batches when the model allows it.

    ``frames_encoded`` counts images passed to ``model.encode_image`` (the expensive part).
    """

    def __init__(self, model: VideoTextModel, batch_size: int = 32) -> None:
        self.model = model
        self.batch_size = max(1, int(batch_size))
        self.encodes = bool(model.frame_independent)
        self.frames_encoded = 0
        self.encoder_calls = 0

    def preprocess(self, frame: np.ndarray) -> Any:
        """uint8 RGB ``[H, W, 3]`` -> normalised ``[3, R, R]`` in the model's backend."""
        from actionclip.video.preprocess import preprocess_frames

        raw = self.model.from_numpy(np.ascontiguousarray(frame)[None])
        return preprocess_frames(raw, self.model.config.preprocessing)[0]

    def stack(self, units: list[Any]) -> Any:
        return self.model.ops.stack(units)

    def encode(self, pixels: list[Any]) -> Any:
        """``[3, R, R]`` pixels -> ``[N, D]`` float32 embeddings, or ``[N, 3, R, R]`` pixels unchanged
        for a model that encodes whole windows."""
        batch = self.stack(pixels)
        if not self.encodes:
            return batch
        with self.model.inference():
            emb = self.model.ops.float32(self.model.encode_image(batch))
        self.frames_encoded += len(pixels)
        self.encoder_calls += 1
        return emb


def iter_windows(
    frames: Iterable[tuple[float, np.ndarray]],
    plan: SamplingPlan,
    encoder: FrameEncoder,
) -> Iterator[tuple[float, float, Any]]:
    """Grid frames ``(t, rgb)`` in order -> ``(start, end, [T, ...] frame units)`` per window (frame
    embeddings ``[T, D]``, or pixels ``[T, 3, R, R]`` for models that encode whole windows).

    ``start`` and ``end`` are the times of the window's first and last frame, so ``(start + end) / 2``
    is the mean time of its frames: where a window straddling a cut is evenly split.

    Each needed grid frame is preprocessed (and encoded) once; a ring buffer holds the units of the last ``span``
    grid frames, which is all any pending window can still need. A video too short for one full window
    gives one window over all its frames, repeating frames as the original sampler does.
    """
    ring: deque[tuple[int, float, Any]] = deque()
    pending: list[tuple[int, float, Any]] = []  # preprocessed, not yet encoded
    next_window = 0
    first_frames: list[tuple[float, Any]] = []  # only kept while shorter than one window

    def flush() -> Iterator[tuple[float, float, Any]]:
        nonlocal next_window
        if not pending:
            return
        embs = encoder.encode([p for _, _, p in pending])
        for (n, t, _), emb in zip(pending, embs):
            ring.append((n, t, emb))
            if len(first_frames) < plan.span:
                first_frames.append((t, emb))
            while ring and ring[0][0] < n - plan.span + 1:
                ring.popleft()
            while True:
                wanted = plan.window_indices(next_window)
                if wanted[-1] != n:
                    break
                by_index = {k: (tk, e) for k, tk, e in ring}
                stack = encoder.stack([by_index[k][1] for k in wanted])
                yield by_index[wanted[0]][0], t, stack
                next_window += 1
        pending.clear()

    for n, (t, frame) in enumerate(frames):
        if not plan.needed(n):
            continue
        pending.append((n, float(t), encoder.preprocess(frame)))
        if len(pending) >= encoder.batch_size:
            yield from flush()
    yield from flush()
    if next_window == 0 and first_frames:
        # Shorter than one window: T frames spread over what there is.
        pick = np.linspace(0, len(first_frames) - 1, plan.frames).round().astype(int)
        stack = encoder.stack([first_frames[k][1] for k in pick])
        yield first_frames[0][0], first_frames[-1][0], stack
