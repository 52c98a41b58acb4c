"""Models that live on the Hugging Face Hub, fetched with ``huggingface_hub`` into its own cache.

A registry entry with a ``hub_id`` (X-CLIP's ``microsoft/xclip-*``) resolves to a snapshot folder of
the hub's cache (``config.json`` + ``model.safetensors``, or ``pytorch_model.bin`` for repositories
that have no safetensors), the folder :mod:`~actionclip.loading.checkpoints` reads. The hub's cache
is shared with ``transformers`` and ``hf download`` (``huggingface-cli download`` in older
releases), so a model fetched by either is
found here without network, and the reverse.

Offline (``ACTIONCLIP_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) nothing touches the network: a model that is
not in the hub cache fails at once with one line naming the command that fetches it and the cache
it goes to. ``huggingface_hub`` is optional (``pip install 'actionclip[hub]'``); without it, an
entry that also has a plain ``url`` (X-CLIP's GitHub release files) is downloaded by
:mod:`~actionclip.loading.download` instead.

Environment read on every call (so that a test or a caller may change them at run time):
``HF_HUB_CACHE`` (else ``huggingface_hub``'s default, ``$HF_HOME/hub``), ``HF_ENDPOINT``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from actionclip.errors import DownloadError

if TYPE_CHECKING:
    from actionclip.loading.registry import ModelSpec

__all__ = ["available", "cache_dir", "cached_folder", "fetch", "fetch_hint"]

CONFIG = "config.json"
WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # preferred first


def available() -> bool:
    """Whether ``huggingface_hub`` is installed (without importing it)."""
    return importlib.util.find_spec("huggingface_hub") is not None


def _hub() -> Any:
    from actionclip.extras import require

    require("hub", "models on the Hugging Face Hub")
    import huggingface_hub

    return huggingface_hub


def cache_dir() -> Path:
    """The hub cache: ``$HF_HUB_CACHE``, else ``huggingface_hub``'s own default."""
    explicit = os.environ.get("HF_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def fetch_hint(spec: "ModelSpec") -> str:
    """How to put ``spec`` in the hub cache by hand (for offline messages)."""
    hint = (f"fetch it with `hf download {spec.hub_id} {CONFIG} {WEIGHTS[0]}` ({WEIGHTS[1]} where the "
            f"repository has no safetensors) into the hub cache {cache_dir()}")
    if spec.url:
        hint += f", or download {spec.url} and load that file by path"
    return hint


def cached_folder(spec: "ModelSpec") -> Path | None:
    """The snapshot folder holding ``spec``'s config and weights, or None when the cache lacks them."""
    hub = _hub()
    config = hub.try_to_load_from_cache(spec.hub_id, CONFIG, cache_dir=cache_dir())
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    for name in WEIGHTS:
        weights = hub.try_to_load_from_cache(spec.hub_id, name, cache_dir=cache_dir())
        # Both from one snapshot: a config of another revision would not describe these weights.
        if isinstance(weights, str) and Path(weights).parent == folder:
            return folder
    return None


def fetch(spec: "ModelSpec", *, force: bool = False, progress: bool | None = None) -> Path:
    """The snapshot folder of ``spec`` (downloaded into the hub cache unless it is there)."""
    from actionclip.loading.cache import is_offline

    label = f"model {spec.name!r} ({spec.hub_id} on the Hugging Face Hub)"
    if not force:
        folder = cached_folder(spec)
        if folder is not None:
            return folder
    if is_offline():
        state = "a fresh download was asked for" if force else "it is not in the Hugging Face cache"
        raise DownloadError(f"{label}: {state}, and offline mode is on (ACTIONCLIP_OFFLINE/HF_HUB_OFFLINE); "
                            f"{fetch_hint(spec)}")
    hub = _hub()
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    def get(name: str) -> Path:
        return Path(hub.hf_hub_download(spec.hub_id, name, cache_dir=cache_dir(), force_download=force,
                                        endpoint=os.environ.get("HF_ENDPOINT") or None))

    try:
        with _progress(progress):
            config = get(CONFIG)
            for name in WEIGHTS:
                try:
                    weights = get(name)
                    break
                except EntryNotFoundError:
                    continue
            else:
                raise DownloadError(f"{label}: the repository has none of {', '.join(WEIGHTS)}")
    except (HfHubHTTPError, OSError, ValueError) as exc:
        # The hub library's messages run over several lines; the first names the cause.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DownloadError(f"cannot download {label}: {first}; without network, {fetch_hint(spec)}") from None
    if weights.parent != config.parent:
        raise DownloadError(f"{label}: the hub answered with two revisions during the download; run it again")
    return config.parent


@contextlib.contextmanager
def _progress(progress: bool | None) -> Iterator[None]:
    """The hub's own progress bars, off when ``progress`` is False (restored afterwards)."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    if progress is False and not was_disabled:
        disable_progress_bars()
    try:
        yield
    finally:
        if progress is False and not was_disabled:
            enable_progress_bars()
