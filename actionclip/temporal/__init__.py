"""Scores over time: timelines of long videos and live streams (a workflow layer above the model).

Importing the package registers ``timeline`` and ``watch`` as the model's conveniences
(:mod:`actionclip.model.conveniences`), so that ``model.timeline(...)`` and ``model.watch(...)``
work without the model importing this layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actionclip.model import conveniences

if TYPE_CHECKING:
    from actionclip.model.base import VideoTextModel


def _timeline(model: VideoTextModel, video: Any, labels: Any, **options: Any) -> Any:
    from actionclip.temporal.timeline import timeline

    return timeline(model, video, labels, **options)


def _watch(model: VideoTextModel, source: Any, labels: Any, **options: Any) -> Any:
    from actionclip.temporal.live import watch

    return watch(model, source, labels, **options)


conveniences.register("timeline", _timeline)
conveniences.register("watch", _watch)
