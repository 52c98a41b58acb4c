"""Label embeddings, cached: the text encoder runs once per set of labels and templates, not per request.

A client usually asks the same question of many videos (the same labels, the same templates), and
embedding 400 Kinetics labels in 16 templates costs far more than encoding a video. Entries are
keyed by the model, the labels (in order: the order of the embedding's rows) and the templates
(resolved, so "the model's own" and an explicit copy of them share an entry), and the least
recently used is dropped past ``maxsize``. A miss goes through the disk cache of
:mod:`actionclip.workflows.label_cache`, so labels embedded by an earlier server or CLI run are read, not
encoded. One computation at a time: two requests for the same new
labels wait for one encoding instead of running two.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from actionclip.text.labels import check_labels
from actionclip.text.templates import resolve_templates
from actionclip.workflows.label_cache import encode_labels

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel

__all__ = ["LabelCache"]


class LabelCache:
    """``get(labels, templates) -> [K, L, D]`` from ``model.encode_labels``, LRU-cached."""

    def __init__(self, model: VideoTextModel, model_id: str, maxsize: int = 64) -> None:
        self.model, self.model_id, self.maxsize = model, model_id, max(1, int(maxsize))
        self._entries: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()  # the table
        self._computing = threading.Lock()  # the text encoder
        self.hits = self.misses = 0

    def key(self, labels: Sequence[str], templates: Sequence[str] | None) -> tuple:
        resolved = resolve_templates(templates=templates, default=self.model.templates)
        return (self.model_id, tuple(check_labels(labels)), tuple(resolved))

    def get(self, labels: Sequence[str], templates: Sequence[str] | None = None) -> Any:
        """The embeddings of ``labels`` in ``templates`` (None: the model's own). Blocking: call it
        from a worker thread."""
        key = self.key(labels, templates)
        hit = self._lookup(key)
        if hit is not None:
            return hit
        with self._computing:  # hits never wait for this, only other misses
            hit = self._lookup(key)  # computed meanwhile by the request we waited for
            if hit is not None:
                return hit
            # through the disk cache: a restarted server (or a CLI run before it) already embedded them
            embeddings = encode_labels(self.model, list(key[1]), list(key[2]))
            with self._lock:
                self.misses += 1
                self._entries[key] = embeddings
                while len(self._entries) > self.maxsize:
                    self._entries.popitem(last=False)
            return embeddings

    def _lookup(self, key: tuple) -> Any:
        with self._lock:
            if key not in self._entries:
                return None
            self.hits += 1
            self._entries.move_to_end(key)
            return self._entries[key]

    def to_dict(self) -> dict[str, int]:
        return {"entries": len(self._entries), "maxsize": self.maxsize, "hits": self.hits, "misses": self.misses}
