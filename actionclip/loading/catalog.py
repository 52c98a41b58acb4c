"""The registry as a table: each named model with what it is and whether it is cached here.

What ``actionclip models`` prints and the server's ``/v1/models`` answers, built once. Reads the
cache folder only (no network, no hashing), so it is cheap enough to call on every request.
"""

from __future__ import annotations

from typing import Any

__all__ = ["model_rows", "source_kind", "ZERO_SHOT"]

ZERO_SHOT = (("ucf101", "UCF101"), ("hmdb51", "HMDB51"), ("k600", "K600"))


def source_kind(spec: Any) -> str:
    """How a model's file arrives: ``download`` (our downloader), ``hub`` (Hugging Face Hub) or
    ``manual`` (fetched by hand, then loaded by path or placed in the cache)."""
    return "hub" if spec.hub_id else "download" if spec.url else "manual"


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
                "family": spec.family,
                "arch": spec.arch,
                "frames": spec.frames,
                "fusion": spec.fusion,
                "zero_shot": {key: spec.zero_shot.get(key) for key, _ in ZERO_SHOT},
                "k400_top1": spec.k400_top1,
                "views": spec.views,
                "size_bytes": size,
                "cached": cached,
                "path": str(cached_path(spec)),
                "source": source_kind(spec),
                "url": spec.url,
                "hub_id": spec.hub_id,
                "manual": spec.manual,
                "licence": spec.licence,
                "homepage": spec.source,
                "description": spec.description,
            }
        )
    return rows
