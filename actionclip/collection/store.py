"""Where an index lives: one LanceDB table of embeddings plus a JSON file saying how they were made.

Layout of an index folder::

    INDEX/index.json        model identity, frames/clips/crops, window/stride, format version
    INDEX/items.lance/      the LanceDB table: one row per video, one per window (moment)
    INDEX/.lock             held by the one run that writes

Columns: ``path`` (resolved), ``video`` (as the user named it), ``kind`` (``video`` | ``window``),
``start``/``end`` (seconds; a video row spans its whole duration), ``size``, ``mtime_ns`` and
``duration`` of the file when it was encoded, ``vector`` (the search vector: the L2-normalised
mean of the views' embeddings, float32 ``[D]``), and, only when ``vector`` alone cannot reproduce
the scores, ``embedding`` (each view's embedding as ``encode_video`` returned it, ``[V * D]``: with
several views, or for a model whose features are :class:`~actionclip.model.scoring.VideoFeatures`)
and ``tokens`` (the visual tokens of such a model, ``[V * N * D]``). The columns are fixed when the
first video is written.

Commits. Each :meth:`Store.add` is one LanceDB commit: data files are written first and a new
table version is published in one step at the end, so a process killed at any moment leaves the
table as it was before the call or after it, never between. A video's rows (video and windows) are
always in the same call, so a video is either wholly in the index or not at all. Replacing a
changed video deletes its old rows in the commit before (killed between the two, the video is
simply absent and encoded again next run).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from actionclip.errors import UsageError

__all__ = ["Store", "FORMAT", "TABLE", "META", "require_lancedb", "features_kind", "to_rows", "from_rows",
           "column_array", "ANN_MIN_ROWS"]

FORMAT = 1
TABLE = "items"
META = "index.json"
# Above this many rows a LanceDB flat scan takes over ~0.1 s a query (3.5 s at 1M here); an IVF-SQ
# index (built in ~7 s per 100,000 rows) answers in ~10 ms.
ANN_MIN_ROWS = 50_000


def require_lancedb(*, now: bool = True) -> Any:
    """``lancedb`` (and the ``pyarrow`` it writes with), or a one-line error saying how to install
    them. Called before any work, so a missing extra fails at once rather than after the encoding.
    ``now=False`` only checks that both are installed (importing lancedb takes seconds; a search
    imports it while its query is embedded) and returns None."""
    from actionclip.extras import require

    if not now:
        import importlib.util

        def installed(name: str) -> bool:
            try:
                return importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):  # ValueError: sys.modules[name] is None (blocked)
                return False

        if all(installed(name) for name in ("lancedb", "pyarrow")):
            return None
    require("index", "video indexes")
    import lancedb

    return lancedb


def _sql(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def features_kind(features: Any) -> str:
    """How :func:`from_rows` must rebuild ``features``: ``"VideoFeatures"`` or ``"tensor"``."""
    from actionclip.model.scoring import VideoFeatures

    return "VideoFeatures" if isinstance(features, VideoFeatures) else "tensor"


def to_rows(features: Any) -> dict[str, np.ndarray]:
    """One batch of video features ``[B, V, ...]`` (numpy; tensor or VideoFeatures) -> column arrays:
    ``vector`` ``[B, D]``, ``embedding`` ``[B, V*D]`` and ``tokens`` ``[B, V*N*D]`` when needed."""
    from actionclip.model.scoring import NUMPY, VideoFeatures

    emb = features.embedding if isinstance(features, VideoFeatures) else features
    emb = np.asarray(emb, dtype=np.float32)
    b, v = emb.shape[:2]
    cols = {"vector": NUMPY.l2(NUMPY.l2(emb).mean(axis=1))}
    if v > 1 or isinstance(features, VideoFeatures):
        cols["embedding"] = emb.reshape(b, -1)
    if isinstance(features, VideoFeatures) and features.tokens is not None:
        cols["tokens"] = np.asarray(features.tokens, dtype=np.float32).reshape(b, -1)
    return cols


def from_rows(cols: dict[str, np.ndarray], views: int, dim: int, features_kind: str) -> Any:
    """Inverse of :func:`to_rows`: column arrays -> video features ``[B, V, ...]`` (numpy)."""
    from actionclip.model.scoring import VideoFeatures

    if "embedding" not in cols:
        return cols["vector"].reshape(-1, 1, dim)
    emb = cols["embedding"].reshape(len(cols["embedding"]), views, dim)
    if features_kind != "VideoFeatures":
        return emb
    tokens = cols.get("tokens")
    return VideoFeatures(emb, None if tokens is None else tokens.reshape(len(tokens), views, -1, dim))


def _fixed(values: np.ndarray) -> Any:
    import pyarrow as pa

    values = np.ascontiguousarray(values, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def column_array(table: Any, name: str) -> np.ndarray:
    """A fixed-size-list column as a writable 2-D float32 array."""
    col = table.column(name).combine_chunks()
    values = col.values.to_numpy(zero_copy_only=False).reshape(len(col), -1)
    return values if values.flags.writeable else values.copy()  # torch refuses read-only buffers


class Store:
    """An index folder: its metadata and its table (see the module notes)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        self._db: Any = None
        self._table: Any = None
        self._lock_fd = -1

    # --- metadata -------------------------------------------------------------------------------

    @property
    def meta_path(self) -> Path:
        return self.path / META

    def exists(self) -> bool:
        return self.meta_path.is_file()

    def read_meta(self) -> dict[str, Any]:
        try:
            meta = json.loads(self.meta_path.read_text("utf-8"))
        except FileNotFoundError:
            raise UsageError(f"{self.path}: not an actionclip index (no {META}; build one with 'actionclip index')") from None
        except (OSError, ValueError) as exc:
            raise UsageError(f"{self.meta_path}: cannot read index metadata ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise UsageError(f"{self.meta_path}: index format {meta.get('format') if isinstance(meta, dict) else '?'} "
                             f"is not the one this actionclip reads ({FORMAT}); rebuild the index")
        return meta

    def write_meta(self, meta: dict[str, Any]) -> None:
        from actionclip.files import write_text

        write_text(self.meta_path, json.dumps({"format": FORMAT, **meta}, indent=2, sort_keys=True) + "\n")

    # --- writer lock ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def writing(self) -> Iterator[Store]:
        """Hold the index's write lock (one writing run at a time; readers never wait)."""
        from actionclip.errors import OutputError

        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write index ({exc.strerror or exc})") from None
        try:
            try:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except ImportError:  # Windows: no advisory locks
                pass
            except OSError:
                raise UsageError(f"{self.path}: another actionclip run is writing this index") from None
            yield self
        finally:
            os.close(fd)

    # --- table ------------------------------------------------------------------------------------

    @property
    def db(self) -> Any:
        if self._db is None:
            self._db = require_lancedb().connect(str(self.path))
        return self._db

    def table(self) -> Any | None:
        """The table, or None before the first video was written."""
        if self._table is None:
            folder = self.path / f"{TABLE}.lance"
            if not folder.is_dir():
                return None
            try:
                self._table = self.db.open_table(TABLE)
            except (ValueError, FileNotFoundError, RuntimeError, OSError):
                if not any(folder.glob("_versions/*")):  # a creation killed before its first commit
                    shutil.rmtree(folder, ignore_errors=True)
                    return None
                raise
        return self._table

    def count(self, kind: str | None = None) -> int:
        table = self.table()
        if table is None:
            return 0
        return table.count_rows(f"kind = {_sql(kind)}" if kind else None)

    def columns(self) -> set[str]:
        table = self.table()
        return set() if table is None else set(table.schema.names)

    def dim(self) -> int:
        table = self.table()
        return 0 if table is None else table.schema.field("vector").type.list_size

    def videos(self) -> dict[str, tuple[int, int]]:
        """``{path: (size, mtime_ns)}`` of every video in the index."""
        rows = self.scan(["path", "size", "mtime_ns"], kind="video")
        if rows is None:
            return {}
        return dict(zip(rows["path"].to_pylist(), zip(rows["size"].to_pylist(), rows["mtime_ns"].to_pylist())))

    def scan(self, columns: list[str], kind: str | None = None) -> Any:
        """Arrow table of ``columns`` for every row (of ``kind``), or None when the index is empty."""
        table = self.table()
        if table is None:
            return None
        query = table.search().select([c for c in columns if c in table.schema.names]).limit(None)
        if kind:
            query = query.where(f"kind = {_sql(kind)}")
        return query.to_arrow()

    def features_kind(self) -> str:
        """``"tensor"`` or ``"VideoFeatures"``: what the model's ``encode_video`` returned."""
        table = self.table()
        meta = (table.schema.metadata or {}) if table is not None else {}
        return meta.get(b"actionclip.features", b"tensor").decode()

    def _schema(self, cols: dict[str, np.ndarray], features_kind: str) -> Any:
        import pyarrow as pa

        fields = [pa.field("path", pa.string()), pa.field("video", pa.string()), pa.field("kind", pa.string()),
                  pa.field("start", pa.float64()), pa.field("end", pa.float64()), pa.field("size", pa.int64()),
                  pa.field("mtime_ns", pa.int64()), pa.field("duration", pa.float64())]
        for name in ("vector", "embedding", "tokens"):
            if name in cols:
                fields.append(pa.field(name, pa.list_(pa.float32(), cols[name].shape[1]), nullable=name != "vector"))
        return pa.schema(fields, metadata={"actionclip.features": features_kind})

    def add(self, meta: dict[str, list[Any]], cols: dict[str, np.ndarray], replace: Sequence[str] = (),
            features_kind: str = "tensor") -> None:
        """Append rows in one commit, after deleting the rows of the videos in ``replace``.

        ``meta``: the plain columns (path, video, kind, start, end, size, mtime_ns, duration) as lists;
        ``cols``: ``vector`` ``[N, D]`` and, where present, ``embedding``/``tokens`` (rows without them,
        windows, hold NaN rows and are stored as null)."""
        import pyarrow as pa

        table = self.table()
        if table is not None and replace:
            table.delete("path IN (" + ", ".join(_sql(p) for p in replace) + ")")
        schema = self._schema(cols, features_kind) if table is None else table.schema
        arrays = {name: pa.array(meta[name], type=schema.field(name).type) for name in meta}
        for field in schema:
            if field.name in cols:
                values = cols[field.name]
                missing = np.isnan(values).all(axis=1) if field.name != "vector" else None
                array = _fixed(np.nan_to_num(values))
                if missing is not None and missing.any():
                    array = pa.FixedSizeListArray.from_arrays(array.values, values.shape[1],
                                                              mask=pa.array(missing))
                arrays[field.name] = array
            elif field.name not in arrays:
                arrays[field.name] = pa.nulls(len(meta["path"]), field.type)
        data = pa.table([arrays[f.name] for f in schema], schema=schema)
        if table is None:
            self._table = self.db.create_table(TABLE, data=data)
        else:
            table.add(data)

    def finish(self, ann_min_rows: int = ANN_MIN_ROWS) -> None:
        """After a run: compact small commits, and build or update the ANN index once large."""
        table = self.table()
        if table is None:
            return
        rows = table.count_rows()
        has_ann = any(getattr(i, "columns", None) == ["vector"] for i in table.list_indices())
        if rows >= ann_min_rows and not has_ann:
            self.create_ann()
        with contextlib.suppress(Exception):  # compaction only saves space and time; never fail a run on it
            table.optimize()

    def create_ann(self, num_partitions: int | None = None) -> None:
        """An IVF-SQ index on ``vector``: ``sqrt(rows)`` partitions, 8-bit scalar-quantised vectors,
        dot product (the vectors are unit length). Queries rerank its candidates exactly
        (``refine_factor``). Chosen over IVF-PQ by benchmarks/bench_index.py: on clustered 512-D
        embeddings PQ's coarse codes confuse a cluster's members (recall@10 0.54 at 128 sub-vectors,
        and 35x the build time), while 8 bits per dimension rank them nearly exactly."""
        from lancedb.index import IvfSq

        table = self.table()
        partitions = num_partitions or max(1, int(round(table.count_rows() ** 0.5)))
        table.create_index("vector", replace=True, config=IvfSq(distance_type="dot", num_partitions=partitions))

