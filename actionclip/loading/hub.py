"""Models that live on the Hugging Face Hub, fetched with ``huggingface_hub`` into its own cache.

A registry entry with a ``hub_id`` (X-CLIP's ``microsoft/xclip-*``) resolves to a snapshot folder of
the hub's cache (``config.json`` + ``model.safetensors``, or ``pytorch_model.bin`` for repositories
that have no safetensors), the folder :mod:`~actionclip.loading.checkpoints` reads. The hub's cache
is shared with ``transformers`` and ``hf download`` (``huggingface-cli download`` in older
releases), so a model fetched by either is
found here without network, and the reverse.

Offline (``ACTIONCLIP_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) nothing touches the network: a model that is
not in the hub cache fails at once with one line naming the command that fetches it and the cache
it goes to. Without those switches but without network, the same: one connection to the hub (or to
the proxy the environment names) says whether it can be reached before ``huggingface_hub`` is asked,
whose client would otherwise retry for ~25 s with a warning per attempt. A download that fails
leaves no lock file of its own in the hub cache (``huggingface_hub`` already removes its partial
files: it writes each download to a file of its own, so none would be resumed). ``huggingface_hub`` is optional (``pip install 'actionclip[hub]'``); without it, an
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
PROBE_TIMEOUT_S = 10.0  # huggingface_hub's own default for its first (metadata) request


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
    from huggingface_hub import constants
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    unreachable = _unreachable(endpoint)
    if unreachable:
        raise DownloadError(f"cannot download {label}: {unreachable}; without network, {fetch_hint(spec)}")

    def get(name: str) -> Path:
        return Path(hub.hf_hub_download(spec.hub_id, name, cache_dir=cache_dir(), force_download=force,
                                        endpoint=endpoint))

    try:
        with _progress(progress), _own_locks_removed(spec):
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


def _unreachable(endpoint: str) -> str | None:
    """Why ``endpoint`` cannot be reached (one TCP connection, to the proxy the environment names
    for it if any), or None when it answers."""
    import socket
    import urllib.parse
    import urllib.request

    url = urllib.parse.urlsplit(endpoint)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and host and not urllib.request.proxy_bypass(host):
        via = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = via.hostname, via.port or (443 if via.scheme == "https" else 80)
    if not host:
        return None  # not a URL this check understands: let the hub's client judge it
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        return f"cannot reach {endpoint} ({exc.strerror or exc or type(exc).__name__})"
    return None


@contextlib.contextmanager
def _own_locks_removed(spec: "ModelSpec") -> Iterator[None]:
    """On a failed download, remove the lock files it created in the hub cache (``.locks/<repo>/``).

    ``huggingface_hub``'s locks only spare a second download of the same file (its cache stays right
    without them), so a lock file no process holds now (a non-blocking lock on it succeeds) is taken
    and removed; one another process holds is left to it."""
    from huggingface_hub.file_download import repo_folder_name

    folder = cache_dir() / ".locks" / repo_folder_name(repo_id=spec.hub_id, repo_type="model")
    before = set(folder.glob("*.lock")) if folder.is_dir() else set()
    try:
        yield
    except BaseException:
        for path in set(folder.glob("*.lock")) - before if folder.is_dir() else ():
            _remove_if_free(path)
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty
        raise


def _remove_if_free(path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: an open file cannot be removed anyway
        return
    try:
        with open(path, "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink()
    except OSError:
        pass  # held by another process, or already gone


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
