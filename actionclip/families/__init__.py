"""One record per model family: what the loader needs to know about a family, in one place.

A :class:`Family` says which checkpoint formats the family builds, its default
:class:`~actionclip.model.config.ModelConfig`, how to build its model from a read checkpoint, and
where its random test weights are written (``actionclip._dev``). :mod:`actionclip.loading` reads files
and registry entries and then dispatches over :data:`FAMILIES`; this layer sits between the models
and the loaders, so a record imports models but never the loaders: a family that needs another
model's weights at build time (ViFi-CLIP, Open-VCLIP) is handed a ``fetch`` function by the loader.
Light: the records import torch and the models only when a model is built.
"""

from __future__ import annotations

from actionclip.families import actionclip, vclip, xclip
from actionclip.families.record import Family, Fetch

__all__ = ["Family", "Fetch", "FAMILIES"]

#: family name -> its record
FAMILIES: dict[str, Family] = {f.name: f for f in (*actionclip.FAMILIES, *xclip.FAMILIES, *vclip.FAMILIES)}
