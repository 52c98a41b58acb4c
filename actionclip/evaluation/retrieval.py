"""Text-video retrieval recall, the formula most papers report (CLIP4Clip's ``compute_metrics``).

Given a similarity matrix ``sim[text, video]``:

- **one caption per video** (MSR-VTT 1k-A as CLIP4Clip and its successors test it: 1,000 videos, one
  sentence each, text ``i`` belongs to video ``i``): text->video ranks every video for each text,
  video->text ranks every text for each video (the transposed matrix). A query's rank is its true
  match's position in the row sorted by decreasing similarity, counted from 0; R@K is the percentage
  of ranks below K, median and mean rank are reported 1-based. **Ties**, as CLIP4Clip's code counts
  them: every position holding a value equal to the true match's counts as one rank, so a query whose
  match ties with ``t - 1`` others contributes ``t`` ranks (``g, g+1, ..., g+t-1``, ``g`` the number
  of strictly higher values) and the denominators grow with it; a query whose own value is NaN
  contributes nothing. Median: numpy's (mean of the middle two).
- **several captions per video** (MSR-VTT with all 20, MSVD, ...; CLIP4Clip's ``multi_sentence``
  path): text->video gives each caption one rank (the number of videos scored strictly higher:
  CLIP4Clip leaves equal values to ``torch.argsort``'s order) and the median is torch's (the lower
  of the middle two); video->text first reduces each video's captions to their best score per
  video (``max`` over the captions), then ranks as above on that square matrix.

:func:`retrieval_metrics` takes any matrix; :func:`evaluate_retrieval` builds it from an index
(``actionclip index``) and a captions CSV (``video_id,sentence``).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from actionclip.errors import UsageError

__all__ = ["rank_positions", "metrics_from_ranks", "retrieval_metrics", "read_captions", "Captions",
           "index_similarity", "evaluate_retrieval"]


def rank_positions(sim: np.ndarray) -> np.ndarray:
    """0-based ranks of the diagonal of a square ``sim`` in its rows, with CLIP4Clip's tie rule
    (a tie of ``t`` values gives ``t`` ranks; a NaN diagonal gives none), row by row."""
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise UsageError(f"similarity matrix must be square here, got shape {sim.shape}")
    diag = np.diag(sim)[:, None]
    greater = (sim > diag).sum(axis=1)
    equal = (sim == diag).sum(axis=1)
    return np.concatenate([np.arange(g, g + t) for g, t in zip(greater, equal)]).astype(np.int64) \
        if len(sim) else np.zeros(0, np.int64)


def metrics_from_ranks(ranks: np.ndarray, *, median: str = "numpy") -> dict[str, float]:
    """R@1/5/10 (percent), MedianR and MeanR (1-based) from 0-based ranks. ``median="lower"`` takes
    the lower middle value (torch.median), ``"numpy"`` the mean of the middle two."""
    ranks = np.asarray(ranks, dtype=np.int64)
    n = len(ranks)
    if n == 0:
        raise UsageError("no query to rank (every true-match similarity is NaN, or nothing was given)")
    if median == "lower":
        med = float(np.sort(ranks)[(n - 1) // 2] + 1)
    else:
        med = float(np.median(ranks) + 1)
    return {"R1": float(np.sum(ranks == 0)) * 100 / n, "R5": float(np.sum(ranks < 5)) * 100 / n,
            "R10": float(np.sum(ranks < 10)) * 100 / n, "MedianR": med, "MeanR": float(np.mean(ranks) + 1),
            "queries": int(n)}


def retrieval_metrics(sim: Any, text_videos: Sequence[int] | np.ndarray | None = None) -> dict[str, Any]:
    """Text->video and video->text R@1/5/10, MedianR, MeanR of a ``[texts, videos]`` similarity matrix.

    Args:
        sim: similarities, text rows and video columns (numpy, a list, or a torch tensor).
        text_videos: the video (column) of each text; ``None``: one caption per video, text ``i`` is
            video ``i`` (``sim`` square). With several captions per video, CLIP4Clip's multi-caption
            protocol (see the module's docstring).

    Returns:
        ``{"text_to_video": {...}, "video_to_text": {...}, "protocol": "one caption per video" | ...}``.
    """
    if hasattr(sim, "detach"):
        sim = sim.detach().cpu().numpy()
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2:
        raise UsageError(f"sim must be a [texts, videos] matrix, got shape {sim.shape}")
    if text_videos is None:
        if sim.shape[0] != sim.shape[1]:
            raise UsageError(f"sim is {sim.shape[0]} texts x {sim.shape[1]} videos: give text_videos "
                             "(the video of each text) when there is not exactly one caption per video")
        return {"protocol": "one caption per video",
                "text_to_video": metrics_from_ranks(rank_positions(sim)),
                "video_to_text": metrics_from_ranks(rank_positions(sim.T))}
    owner = np.asarray(text_videos, dtype=np.int64).reshape(-1)
    n_text, n_video = sim.shape
    if len(owner) != n_text:
        raise UsageError(f"text_videos has {len(owner)} entries for {n_text} texts")
    if len(owner) and (owner.min() < 0 or owner.max() >= n_video):
        raise UsageError(f"text_videos must index the {n_video} videos (0..{n_video - 1})")
    if np.any(np.bincount(owner, minlength=n_video) == 0):
        missing = int(np.nonzero(np.bincount(owner, minlength=n_video) == 0)[0][0])
        raise UsageError(f"video {missing} has no caption: every video needs at least one")
    own = sim[np.arange(n_text), owner][:, None]
    t2v = (sim > own).sum(axis=1)[~np.isnan(own[:, 0])]
    best = np.full((n_video, n_video), -np.inf)  # best[g, v]: the best caption of video g against video v
    for g in range(n_video):
        rows = sim[owner == g]
        best[g] = np.max(np.where(np.isnan(rows), -np.inf, rows), axis=0)
    return {"protocol": "several captions per video",
            "text_to_video": metrics_from_ranks(t2v, median="lower"),
            "video_to_text": metrics_from_ranks(rank_positions(best.T))}


# ----------------------------------------------------------------------------------------------
# Captions and an index


@dataclass
class Captions:
    """Sentences and the video id each describes, in file order."""

    video_ids: list[str]
    sentences: list[str]
    source: str


def read_captions(path: str | os.PathLike) -> Captions:
    """A CSV with ``video_id`` and ``sentence`` columns (others ignored, as in MSR-VTT's
    ``MSRVTT_JSFUSION_test.csv``); one row per caption."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            if "video_id" not in fields or "sentence" not in fields:
                raise UsageError(f"{path}: needs 'video_id' and 'sentence' columns, found {', '.join(fields) or 'none'}")
            ids, sentences = [], []
            for n, row in enumerate(reader, 2):
                vid, sentence = (row.get("video_id") or "").strip(), (row.get("sentence") or "").strip()
                if not vid or not sentence:
                    raise UsageError(f"{path}: line {n}: empty video_id or sentence")
                ids.append(vid)
                sentences.append(sentence)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such captions file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path}: cannot read captions ({getattr(exc, 'strerror', None) or exc})") from None
    if not ids:
        raise UsageError(f"{path}: no caption")
    return Captions(ids, sentences, str(path))


def index_similarity(index: Any, sentences: Sequence[str], *, templates: Sequence[str] | None = None,
                     ) -> tuple[np.ndarray, list[str]]:
    """``sim [sentences, indexed videos]`` and the videos' paths: the model's own score (its logits over
    the logit scale, mean over views and templates) of every stored video against every sentence.

    Sentences are embedded as written (template ``"{}"``) unless ``templates`` are given; equal
    sentences are embedded once.
    """
    from actionclip.model.label_cache import encode_labels
    from actionclip.text.labels import label_key

    model = index.model
    unique: dict[str, int] = {}
    for s in sentences:
        unique.setdefault(label_key(s), len(unique))
    firsts = {}
    for s in sentences:
        firsts.setdefault(label_key(s), s)
    texts = list(firsts.values())
    text_emb = encode_labels(model, texts, list(templates) if templates else ["{}"], cache=False)
    scores, paths = [], []
    for rows, features in index._features("video"):
        with model._inference():
            logits = model._ops.to_numpy(model.logits(features, text_emb))  # [B, V, K, L]
            scale = float(model.logit_scale)
        scores.append(logits.mean(axis=(1, 2)) / scale)
        paths += rows["path"]
    if not scores:
        raise UsageError(f"{index.path}: the index holds no video")
    sim = np.concatenate(scores).T  # [unique texts, videos]
    return sim[[unique[label_key(s)] for s in sentences]], paths


def evaluate_retrieval(index: Any, captions: str | os.PathLike | Captions, *,
                       templates: Sequence[str] | None = None, device: str = "auto",
                       dtype: str | None = None) -> dict[str, Any]:
    """Text->video and video->text recall of an index (a path or an opened :class:`Index`) on captions.

    Candidates are the videos the captions name, matched to indexed videos by file stem; with one
    caption per video the single-caption protocol applies, otherwise the multi-caption one (see
    :func:`retrieval_metrics`).

    Raises:
        UsageError: a caption's video id matches no indexed video (or two), or the files are malformed.
    """
    from actionclip.collection.query import Index

    caps = captions if isinstance(captions, Captions) else read_captions(captions)
    idx = index if isinstance(index, Index) else Index(index, device=device, dtype=dtype)
    from actionclip.evaluation.predictions import _id_candidates

    sim_all, paths = index_similarity(idx, caps.sentences, templates=templates)
    by_stem: dict[str, list[int]] = {}  # every id a file may go by: stem, folder/stem, ...
    for i, p in enumerate(paths):
        for candidate in _id_candidates(p):
            by_stem.setdefault(candidate, []).append(i)
    videos = list(dict.fromkeys(caps.video_ids))
    unknown = [v for v in videos if v not in by_stem]
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise UsageError(f"{caps.source}: {len(unknown)} video id(s) not in the index {idx.path} ({shown}); "
                         "ids are matched to indexed files by name without extension, or folder/name")
    doubles = [v for v in videos if len(by_stem[v]) > 1]
    if doubles:
        raise UsageError(f"{caps.source}: video id {doubles[0]!r} matches {len(by_stem[doubles[0]])} indexed files "
                         "(name it folder/name)")
    column = [by_stem[v][0] for v in videos]
    sim = sim_all[:, column]
    # One caption per video keeps CSV order on both axes (text i is video i): the single-caption protocol.
    position = {v: i for i, v in enumerate(videos)}
    owner = None if len(videos) == len(caps.video_ids) else [position[v] for v in caps.video_ids]
    result = retrieval_metrics(sim, owner)
    result.update(videos=len(videos), captions=len(caps.sentences), index=str(idx.path), captions_file=caps.source)
    return result
