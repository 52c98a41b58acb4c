"""The registry as a table: each named model with what it is and whether it is cached here.

What ``actionclip models`` prints and the server's ``/v1/models`` answers, built once. Reads the
cache folder only (no network, no hashing), so it is cheap enough to call on every request.
"""

from __future__ import annotations

from typing import Any

__all__ = ["model_rows"]


def model_rows() -> list[dict[str, Any]]:
    """One dict per registered model, with its cache state (no network, no hashing)."""
    from actionclip.loading.download import cached_path, is_cached
    from actionclip.loading.registry import DEFAULT_MODEL, list_models

    rows = []
    for spec in list_models():
        cached = is_cached(spec)
        size = spec.size_bytes
        if size is None and cached:
            size = cached_path(spec).stat().st_size  # unpublished size: report the file we hold
        rows.append(
            {
                "name": spec.name,
                "default": spec.name == DEFAULT_MODEL,
                "arch": spec.arch,
                "frames": spec.frames,
                "fusion": spec.fusion,
                "k400_top1": spec.k400_top1,
                "views": spec.views,
                "size_bytes": size,
                "cached": cached,
                "path": str(cached_path(spec)),
                "url": spec.url,
                "description": spec.description,
            }
        )
    return rows
