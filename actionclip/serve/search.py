"""An index served: free-text search, classification of every video, uploads added, HTTP-free.

``actionclip serve --index INDEX`` opens the index once with the server's model (the one it was
built with: :func:`actionclip.collection.model_ref.check` refuses another) and answers from it:

* :meth:`SearchService.search` ranks exactly as :meth:`actionclip.collection.Index.search` (the
  ``actionclip search --json`` list), with each query's embedding kept in a small LRU cache, so a
  repeated query costs only the table search;
* :meth:`SearchService.classify` gives the records of ``classify --index``;
* :meth:`SearchService.add` adds an uploaded video, incrementally (the library's :func:`index`),
  keeping the file under ``INDEX/uploads/`` (the index stores paths, not pixels);
* :attr:`SearchService.media` addresses the indexed files by id (:mod:`~actionclip.serve.media`).

Every call blocks: the routes run them in the worker pool.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actionclip.serve.media import MediaLibrary, video_id
from actionclip.serve.problems import Problem

__all__ = ["SearchService", "UPLOADS"]

UPLOADS = "uploads"  # INDEX/uploads/<content hash>/<name>: videos added through the server


class SearchService:
    """One index, its model and its media (see the module notes)."""

    def __init__(self, index_path: str | os.PathLike, model: Any, *, media_dir: str | os.PathLike,
                 max_seconds: float = 600.0, query_cache: int = 256, workers: int | None = None) -> None:
        from actionclip.collection.query import Index

        self.path = Path(index_path)
        self.model = model
        self.index = Index(self.path, model=model)
        self.index.model  # noqa: B018 - checks the model against the index's record now, not at the first query
        self.workers = workers
        self.media = MediaLibrary(self._paths(), media_dir, max_seconds=max_seconds)
        self._queries: OrderedDict[str, Any] = OrderedDict()
        self._query_cache = max(1, int(query_cache))
        self._lock = threading.Lock()  # the query cache
        self._writing = threading.Lock()  # one upload encoded into the index at a time
        self.query_hits = self.query_misses = 0

    def _paths(self) -> list[str]:
        rows = self.index.store.scan(["path"], kind="video")
        return [] if rows is None else rows["path"].to_pylist()

    # --- what the page shows about the index ---------------------------------------------------------

    def info(self) -> dict[str, Any]:
        meta = self.index.meta
        recorded = meta["model"]
        return {"videos": len(self.index), "moments": self.index.moments,
                "model": str(recorded.get("name") or recorded.get("id")), "frames": meta["frames"],
                "window": meta.get("window"), "stride": meta.get("stride")}

    # --- search ------------------------------------------------------------------------------------

    def embedded(self, text: str) -> Any:
        """The query's embedding, from the LRU cache or the text encoder."""
        with self._lock:
            if text in self._queries:
                self.query_hits += 1
                self._queries.move_to_end(text)
                return self._queries[text]
        query = self.index.embed_query(text)
        with self._lock:
            self.query_misses += 1
            self._queries[text] = query
            while len(self._queries) > self._query_cache:
                self._queries.popitem(last=False)
        return query

    def search(self, text: str, top_k: int = 10, only: str | None = None) -> list[dict[str, Any]]:
        """The hits of :meth:`Index.search` (same order, same scores) as the API's JSON objects."""
        if not text or not text.strip():
            raise Problem(400, "q: an empty query; say in words what to look for")
        kind = {"videos": "video", "moments": "window", None: None}.get(only, "?")
        if kind == "?":
            raise Problem(400, f"only: {only!r} is not 'videos' or 'moments'")
        hits = self.index.search(text, top_k=top_k, kind=kind, query=self.embedded(text))
        out = []
        for hit in hits:
            vid = video_id(hit.path)
            moment = hit.kind == "window"
            at = (hit.start + hit.end) / 2 if moment else min(1.0, (hit.end or 0.0) / 2)
            out.append({"video": hit.video, "score": hit.score, "kind": hit.kind,
                        "start": hit.start if moment else None, "end": hit.end if moment else None,
                        "id": vid, "thumbnail": f"/v1/thumbnails/{vid}?t={at:.1f}", **self.playback(vid)})
        return out

    def playback(self, vid: str) -> dict[str, Any]:
        """Where a browser plays video ``vid``: the original when it can, else the server's preview."""
        try:
            playable = self.media.playable(vid)
        except Problem:  # the file went away: the hit stays, the player will say so
            playable = True
        return {"playable": playable, "media": f"/v1/videos/{vid}" + ("" if playable else "/preview")}

    def stats(self) -> dict[str, int]:
        return {"entries": len(self._queries), "maxsize": self._query_cache, "hits": self.query_hits,
                "misses": self.query_misses, "previews_made": self.media.transcodes}

    # --- classify every video ------------------------------------------------------------------------

    def classify(self, labels: Sequence[str], templates: Sequence[str] | None = None,
                 top_k: int | None = None) -> list[dict[str, Any]]:
        """The records of ``classify --index`` (public fields), one per video."""
        from actionclip.results import public_record

        result = self.index.classify(labels, templates=templates)
        return [public_record(r, top_k) for r in result.records(top_k=top_k)]

    # --- uploads added to the index ----------------------------------------------------------------

    def add(self, upload: Path, name: str) -> dict[str, Any]:
        """Keep the uploaded file under ``INDEX/uploads/`` and encode it into the index."""
        from actionclip.collection.build import index

        digest = _file_sha256(upload)[:16]
        target = self.path / UPLOADS / digest / _safe_name(name, upload.suffix)
        with self._writing:
            fresh = not target.exists()
            if fresh:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(os.fspath(upload), os.fspath(target))
            failures: list[tuple[str, BaseException]] = []
            try:
                built = index([target], self.path, model=self.model, workers=self.workers,
                              on_error=lambda _n, exc: failures.append((_n, exc)))
            except Exception:
                if fresh:
                    shutil.rmtree(target.parent, ignore_errors=True)
                raise
            if failures:
                if fresh:
                    shutil.rmtree(target.parent, ignore_errors=True)
                raise Problem(400, str(failures[0][1]).replace(os.fspath(target), name))
            self.index = type(self.index)(self.path, model=self.model)  # sees the new table version
            self.index.meta  # noqa: B018
            resolved = os.fspath(target.resolve())
            self.media.update([resolved])
        report = built.report
        return {"video": name, "id": video_id(resolved), "encoded": report.encoded, "unchanged": report.unchanged,
                "moments": report.windows, "index": self.info()}


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _safe_name(name: str, suffix: str) -> str:
    """A client's file name as a plain file name: letters, digits, ``._-`` only, with a video suffix."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._") or "upload"
    return stem[:100] + (suffix or ".mp4")
