"""Ask an index: free-text search over videos and moments, and classification of every video.

Neither decodes a video: a label set or a query costs its text embeddings (cached on disk for label
sets, :mod:`actionclip.workflows.label_cache`) and a matrix product with the stored embeddings.

Search scores a video (or moment) by the cosine between its stored vector and the query embedded in
every template of the model, averaged (CLIP's prompt ensemble); LanceDB answers it, by a flat scan or,
once the index is large, its ANN index. For a model whose text depends on the video
(:class:`~actionclip.model.scoring.VideoFeatures` with tokens, as X-CLIP), the score is the model's
own ``logits / logit_scale`` averaged over templates and views, computed for every stored video.

Classification gives each video the probabilities plain ``classify`` would give it (same model,
views, templates), from the stored features: :meth:`Index.classify`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from actionclip.collection.store import Store, column_array, from_rows, require_lancedb

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel

__all__ = ["Index", "Hit", "Classification", "open_index"]

CHUNK = 2048  # videos scored per matrix product: [CHUNK, V, K, L] logits stay small


@dataclass(frozen=True)
class Hit:
    """A search result: a whole video (``kind="video"``) or a moment of one (``kind="window"``)."""

    video: str
    path: str
    score: float
    kind: str
    start: float
    end: float

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"video": self.video, "path": self.path, "score": self.score, "kind": self.kind}
        if self.kind == "window":
            out.update(start=self.start, end=self.end)
        return out


@dataclass
class Classification:
    """Probabilities of ``labels`` for every indexed video: ``probs[i, j]`` for ``videos[i]``."""

    videos: list[str]
    paths: list[str]
    labels: list[str]
    probs: np.ndarray
    model: str
    frames: int
    clips: int
    crops: int
    key: str

    def records(self, top_k: int | None = None) -> Iterator[dict[str, Any]]:
        """One record per video, as plain ``classify`` makes them (:func:`actionclip.results.make_record`)."""
        from actionclip.results import make_record

        for video, path, row in zip(self.videos, self.paths, self.probs):
            yield make_record(video, path, model=self.model, frames=self.frames, clips=self.clips, crops=self.crops,
                              labels=self.labels, probs=row, key=self.key, top_k=top_k)


class Index:
    """An index folder opened for queries. The model is the one it was built with, loaded on first
    use (or ``model``, checked against the index's record)."""

    def __init__(self, path: str | os.PathLike, *, model: VideoTextModel | None = None, device: str = "auto",
                 dtype: str | None = None):
        require_lancedb(now=False)  # imported with the table, on first use (seconds: see search)
        self.store = Store(path)
        self.path = self.store.path
        self.meta = self.store.read_meta()
        self.report: Any = None  # the BuildReport of the run that returned this index (build imports this module)
        self._device, self._dtype = device, dtype
        self._model = model
        self._checked = model is None
        self._text_side: Any = False  # not looked for yet

    @property
    def model(self) -> VideoTextModel:
        import actionclip.collection.model_ref as model_ref

        if self._model is None:
            self._model = model_ref.load_recorded(self.meta["model"], self.path, device=self._device, dtype=self._dtype)
        elif not self._checked:
            model_ref.check(self.meta["model"], self._model, self.path)
            self._checked = True
        return self._model

    def __len__(self) -> int:
        return self.store.count("video")

    @property
    def moments(self) -> int:
        return self.store.count("window")

    # --- search -----------------------------------------------------------------------------------

    def _query(self, text: str) -> Any:
        """The query in every template: ``[K, 1, D]`` L2-normalised, the model's backend; by the
        model's text side alone when the whole model is not loaded and the text side will do
        (:mod:`~actionclip.collection.text_side`: no torch, weights memory-mapped), and then through
        the disk cache of label embeddings, so a query asked before is read, not encoded."""
        from actionclip.workflows.label_cache import encode_labels

        side = self.text_side()
        if side is not None:
            return encode_labels(side, [text])
        return encode_labels(self.model, [text], cache=False)  # a server keeps its own cache of queries

    def text_side(self) -> Any:
        """The :class:`~actionclip.collection.text_side.TextSide` queries are embedded with, or None
        when they need the whole model (it is loaded, or the model's text is not plain CLIP's)."""
        if self._model is not None:
            return None
        if self._text_side is False:
            from actionclip.collection.text_side import text_side

            self._text_side = text_side(self.meta["model"], dtype=self._dtype, device=self._device)
        return self._text_side

    def embed_query(self, text: str) -> Any:
        """The query ``text`` as :meth:`search` embeds it (``[K, 1, D]``), to keep and pass as ``query``."""
        return self._query(text)

    def search(self, text: str, top_k: int = 10, *, kind: str | None = None, nprobes: int = 20,
               refine_factor: int = 5, query: Any = None) -> list[Hit]:
        """The ``top_k`` best videos, and the ``top_k`` best moments when the index has them, for a
        free-text query; highest score first. ``kind``: only ``"video"`` or only ``"window"`` hits.
        ``nprobes``/``refine_factor`` tune the ANN index once there is one (ignored before).
        ``query``: ``text`` already embedded by :meth:`embed_query` (a server caches them)."""
        from actionclip.errors import UsageError

        if kind not in (None, "video", "window"):
            raise UsageError(f"kind {kind!r}: must be 'video' or 'window'")
        if top_k < 1:
            raise UsageError(f"top_k must be at least 1, got {top_k}")
        if query is None:
            # LanceDB takes seconds to import: open the table while the query is embedded
            opening = threading.Thread(target=self._open_table_quietly, daemon=True)
            opening.start()
            query = self._query(text)
            opening.join()
        kinds = [kind] if kind else ["video"] + (["window"] if self.moments else [])
        hits: list[Hit] = []
        for k in kinds:
            hits += (self._search_exact(query, top_k, k) if "tokens" in self.store.columns()
                     else self._search_vectors(query, top_k, k, nprobes, refine_factor))
        return sorted(hits, key=lambda h: -h.score)

    def _open_table_quietly(self) -> None:
        try:
            self.store.table()
        except Exception:  # noqa: BLE001 - the search opens it again and reports the error in one line
            pass

    def _search_vectors(self, query: Any, top_k: int, kind: str, nprobes: int, refine_factor: int) -> list[Hit]:
        table = self.store.table()
        if table is None:
            return []
        from actionclip.model.scoring import NUMPY

        values = query if isinstance(query, np.ndarray) else self.model.ops.to_numpy(query)
        q = NUMPY.l2(values.mean(axis=0)[0])
        # "_distance" is selected by name: LanceDB's implicit addition of it to a projection is deprecated
        # (a warning per query from its Rust core), and metric() is the old alias of distance_type().
        search = (table.search(q.astype(np.float32), vector_column_name="vector").distance_type("dot")
                  .where(f"kind = '{kind}'", prefilter=True).limit(top_k)
                  .select(["path", "video", "kind", "start", "end", "_distance"]))
        if table.list_indices():
            search = search.nprobes(nprobes).refine_factor(refine_factor)
        rows = search.to_arrow().to_pylist()
        return [Hit(r["video"], r["path"], 1.0 - float(r["_distance"]), r["kind"], r["start"], r["end"]) for r in rows]

    def _search_exact(self, query: Any, top_k: int, kind: str) -> list[Hit]:
        """Models whose text depends on the video: the model's own scores for every stored video."""
        model = self.model
        scores: list[np.ndarray] = []
        rows: dict[str, list[Any]] = {}
        for part, features in self._features(kind):
            with model.inference():
                logits = model.ops.to_numpy(model.logits(features, query))  # [B, V, K, 1]
            scores.append(logits.mean(axis=(1, 2))[:, 0] / float(model.logit_scale))
            for name, values in part.items():
                rows.setdefault(name, []).extend(values)
        if not scores:
            return []
        all_scores = np.concatenate(scores)
        best = np.argsort(-all_scores, kind="stable")[:top_k]
        return [Hit(rows["video"][i], rows["path"][i], float(all_scores[i]), kind, rows["start"][i], rows["end"][i])
                for i in best]

    # --- classification ---------------------------------------------------------------------------

    def _features(self, kind: str = "video") -> Iterator[tuple[dict[str, list[Any]], Any]]:
        """``({column: values}, features [B, V, ...] in the model's backend)`` for stored rows, in chunks."""
        from actionclip.model.scoring import map_features

        table = self.store.scan(["path", "video", "start", "end", "vector", "embedding", "tokens"], kind=kind)
        if table is None:
            return
        dim = self.store.dim()
        views = self.meta["clips"] * self.meta["crops"]
        kind_name = self.store.features_kind()
        model = self.model

        def to_backend(array: np.ndarray, _: int) -> Any:
            return model.from_numpy(array, on_device=True)  # scored where the model runs (a GPU, say)
        for start in range(0, table.num_rows, CHUNK):
            part = table.slice(start, CHUNK)
            cols = {name: column_array(part, name) for name in ("vector", "embedding", "tokens")
                    if name in part.column_names}
            features = map_features(from_rows(cols, views, dim, kind_name), to_backend)
            yield {name: part.column(name).to_pylist() for name in ("path", "video", "start", "end")}, features

    def classify(self, labels: Sequence[str], *, templates: Sequence[str] | str | None = None) -> Classification:
        """Probabilities of ``labels`` for every indexed video, as plain ``classify`` computes them
        (softmax over labels per template and view, then the mean), from the stored features."""
        from actionclip.model.scoring import CosineScorer
        from actionclip.results import run_key
        from actionclip.text.labels import check_labels
        from actionclip.workflows.label_cache import encode_labels

        labels = check_labels(labels)
        model = self.model
        if isinstance(templates, str):
            templates = [templates]
        templates = list(templates) if templates else model.templates
        label_emb = encode_labels(model, labels, templates)
        videos: list[str] = []
        paths: list[str] = []
        probs: list[np.ndarray] = []
        # Plain cosine models score the whole collection in the streamed form, in the model's native
        # precision (bf16 on an AMX CPU: 4x faster than fp32; --dtype fp32 keeps it exact).
        scorer = None
        bulk_dtype = model.bulk_score_dtype() if model.cosine_scoring else None
        if bulk_dtype is not None:
            with model.inference():
                scorer = CosineScorer(label_emb, float(model.logit_scale), compute_dtype=bulk_dtype)
        for rows, features in self._features("video"):
            with model.inference():
                scored = scorer(features) if scorer else model.probabilities(features, label_emb)
            probs.append(model.ops.to_numpy(scored))
            videos += rows["video"]
            paths += rows["path"]
        meta = self.meta
        key = run_key(meta["model"]["id"], meta["frames"], meta["clips"], meta["crops"], labels, templates)
        return Classification(videos, paths, labels,
                              np.concatenate(probs) if probs else np.zeros((0, len(labels)), np.float32),
                              str(meta["model"].get("name") or meta["model"]["id"]), meta["frames"], meta["clips"],
                              meta["crops"], key)


def open_index(path: str | os.PathLike, *, model: VideoTextModel | None = None, device: str = "auto",
               dtype: str | None = None) -> Index:
    """Open an index folder for :meth:`Index.search` and :meth:`Index.classify`."""
    return Index(path, model=model, device=device, dtype=dtype)
