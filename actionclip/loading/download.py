"""Model cache and downloads: resumable, verified, atomic, safe across processes.

A model file is streamed into ``<cache>/<file>.part`` and renamed to ``<cache>/<file>`` only once its
size and SHA-256 are verified, so the final name never holds half a file. An interrupted ``.part`` is
resumed with an HTTP ``Range`` request (or restarted cleanly when the server ignores it); a ``.part``
that holds nothing is removed. A lock file serialises processes fetching the same file and is removed
by its holder when the download ends, done or failed (see :func:`_lock`). A server that cannot be
reached at all fails at once, without retries. After a verified download a small
``<file>.verified`` record (hash, size, mtime) lets later loads trust the file without re-hashing
hundreds of megabytes; a file whose size or mtime no longer matches is hashed again.

Environment:
    ``ACTIONCLIP_CACHE``: cache directory (default ``$XDG_CACHE_HOME/actionclip`` or
    ``~/.cache/actionclip``).
    ``ACTIONCLIP_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``): never touch the network; a missing file is
    an immediate error that says which file to put where.

Entries with a ``hub_id`` (models on the Hugging Face Hub) go through :mod:`actionclip.loading.hub`
instead: the hub's cache and client, the same offline switches.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator, Mapping

from actionclip import __version__
from actionclip.errors import CheckpointError, DownloadError, OutputError, UsageError
from actionclip.files import write_text
from actionclip.loading.cache import cache_dir, is_offline
from actionclip.loading.registry import ModelSpec, get_spec

if TYPE_CHECKING:
    import http.client

__all__ = ["cache_dir", "is_offline", "download", "resolve", "is_cached", "cached_path"]

log = logging.getLogger(__name__)

# Tunables (module level so tests can shorten them).
RETRIES = 4  # further attempts after a dropped connection or a 5xx answer
BACKOFF_S = 1.0  # wait before retry n is BACKOFF_S * 2**(n-1)
TIMEOUT_S = 30.0  # socket connect/read timeout
CHUNK = 1 << 20

_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


# ----------------------------------------------------------------------------------------------
# Cache location and offline mode


# ----------------------------------------------------------------------------------------------
# What to fetch


@dataclass(frozen=True)
class _Target:
    """A file to fetch: the label used in messages, its URL, cache path and known checks."""

    label: str
    url: str
    path: Path
    sha256: str | None
    size: int | None
    manual: str = ""  # where to fetch it by hand, for a registry entry without a stable URL

    @property
    def part(self) -> Path:
        return self.path.with_name(self.path.name + ".part")

    @property
    def record(self) -> Path:
        return self.path.with_name(self.path.name + ".verified")

    @property
    def lock(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def _url_cache_path(url: str) -> Path:
    """Cache path of an ad-hoc URL: a short hash of the URL keeps equal basenames apart."""
    basename = Path(urllib.parse.urlparse(url).path).name or "download"
    key = hashlib.sha256(url.encode()).hexdigest()[:12]
    return cache_dir() / "urls" / f"{key}-{basename}"


def _target(
    what: str | ModelSpec, registry: Mapping[str, ModelSpec] | None, sha256: str | None = None
) -> _Target:
    if isinstance(what, ModelSpec):
        spec = what
    elif _is_url(what):
        return _Target(what, what, _url_cache_path(what), sha256.lower() if sha256 else None, None)
    else:
        spec = get_spec(what, dict(registry) if registry is not None else None)
    return _Target(
        f"model {spec.name!r}",
        spec.url,
        cache_dir() / spec.filename,
        (sha256 or spec.sha256 or "").lower() or None,
        spec.size_bytes,
        spec.manual,
    )


def cached_path(name: str | ModelSpec, *, registry: Mapping[str, ModelSpec] | None = None) -> Path:
    """Where the cache keeps model ``name`` (a registry name, spec or URL), present or not (for a
    model on the Hugging Face Hub: its snapshot folder when cached, else the hub cache)."""
    spec = _hub_spec(name, registry)
    if spec is not None:
        from actionclip.loading import hub

        return hub.cached_folder(spec) or hub.cache_dir()
    return _target(name, registry).path


def is_cached(name: str | ModelSpec, *, registry: Mapping[str, ModelSpec] | None = None) -> bool:
    """True when the cache holds model ``name`` with the expected size (cheap: no hashing)."""
    spec = _hub_spec(name, registry)
    if spec is not None:
        from actionclip.loading import hub

        return hub.cached_folder(spec) is not None
    target = _target(name, registry)
    try:
        st = target.path.stat()
    except OSError:
        return False
    if not target.path.is_file():
        return False
    record = _read_record(target)
    expected = target.size if target.size is not None else (record or {}).get("size")
    return expected is None or st.st_size == expected


# ----------------------------------------------------------------------------------------------
# Verification of cached files


def _sha256_file(path: Path, limit: int | None = None) -> hashlib._Hash:
    """SHA-256 of ``path`` (or of its first ``limit`` bytes), as a hash object to continue."""
    digest = hashlib.sha256()
    remaining = limit
    with open(path, "rb") as f:
        while remaining is None or remaining > 0:
            block = f.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not block:
                break
            digest.update(block)
            if remaining is not None:
                remaining -= len(block)
    return digest


def _read_record(target: _Target) -> dict | None:
    try:
        data = json.loads(target.record.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_record(target: _Target, sha256: str) -> None:
    """Remember that the file as it is now (size + mtime) hashes to ``sha256``."""
    st = target.path.stat()
    data = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "url": target.url}
    try:
        write_text(target.record, json.dumps(data) + "\n")
    except OutputError as exc:  # a read-only cache still works, it just re-hashes next time
        log.debug("could not write %s: %s", target.record, exc)


def _cache_problem(target: _Target) -> str | None:
    """Why the cached file cannot be used, or None when it is good. Requires the file to exist.

    Hashes the file only when no matching ``.verified`` record vouches for it.
    """
    path = target.path
    if not path.is_file():
        return f"{path} is not a regular file"
    st = path.stat()
    if target.size is not None and st.st_size != target.size:
        return f"{path} has {st.st_size} bytes, expected {target.size} (truncated or corrupt)"
    record = _read_record(target)
    if record and target.sha256 is not None and record.get("sha256") != target.sha256:
        record = None  # it vouches for some other file
    if record and record.get("size") == st.st_size and record.get("mtime_ns") == st.st_mtime_ns:
        return None
    if record and target.size is None and record.get("size") != st.st_size:
        return f"{path} has {st.st_size} bytes, but {record.get('size')} were downloaded (truncated or corrupt)"
    # Without a published hash, the hash recorded at download time is the reference.
    expected = target.sha256 or (record or {}).get("sha256")
    if expected is None:
        return None  # placed by hand, nothing to check it against: the loader will judge it
    try:
        actual = _sha256_file(path).hexdigest()
    except OSError as exc:  # e.g. another user's file: unusable, like a corrupt one
        return f"{path} cannot be read ({exc.strerror or exc})"
    if actual != expected:
        return f"{path} has sha256 {actual}, expected {expected} (corrupt)"
    _write_record(target, actual)
    return None


def _place_hint(target: _Target) -> str:
    return f"download {target.url} and save it as {target.path}"


# ----------------------------------------------------------------------------------------------
# Transfer


class _Retry(Exception):
    """A transient failure: the connection dropped or the server said try again."""


class _NoConnection(Exception):
    """The server could not be reached at all (refused, DNS, connect timeout)."""


def _open_lock(path: Path) -> BinaryIO:
    try:
        return open(path, "a+b")  # created if missing
    except OSError as exc:
        raise DownloadError(f"cannot write to the model cache {path.parent}: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Exclusive inter-process lock on the lock file ``path``, held for the block, and the file
    removed before it is released, so no download leaves one behind.

    Removing a lock file is safe only with a check on the other side: a process that opened the file
    before it was removed would otherwise lock the removed file while a third one locks a new file of
    the same name. So a process that gets the lock checks that ``path`` is still the file it locked,
    and starts over when it is not. (Windows cannot remove an open file: the lock file stays there.)
    """
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        with _open_lock(path) as f:
            f.seek(0)
            while True:
                try:
                    msvcrt.locking(f.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    continue
            try:
                yield
            finally:
                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
        return
    while True:
        f = _open_lock(path)
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(f.fileno()).st_ino:
                break
        except BaseException:
            f.close()
            raise
        f.close()  # its holder removed it meanwhile: lock the file that is there now
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        f.close()  # releases the lock


def _progress_bar(target: _Target, progress: bool | None):
    from tqdm import tqdm

    show = progress if progress is not None else sys.stderr.isatty()
    return tqdm(
        desc=target.path.name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        total=target.size,
        file=sys.stderr,
        disable=not show,
        leave=True,
        dynamic_ncols=True,
    )


def _open(target: _Target, offset: int) -> http.client.HTTPResponse:
    # Imported here: urllib.request pulls in ssl and email (~0.3 s), which listing models or
    # resolving a local path never needs.
    import http.client
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        target.url,
        headers={"User-Agent": f"actionclip/{__version__}", "Accept-Encoding": "identity"},
    )
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            # The partial file does not fit the server's file (it changed, or .part is junk).
            target.part.unlink(missing_ok=True)
            raise _Retry("the server refused to resume the partial file; restarting") from exc
        if exc.code in _RETRY_STATUS:
            raise _Retry(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(f"cannot download {target.label} from {target.url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _NoConnection(str(reason) or type(reason).__name__) from exc


def _fetch_once(target: _Target, bar) -> tuple[str, int, int]:
    """One HTTP request: continue (or restart) ``target.part``.

    Returns the sha256 and size of the complete ``.part``, and the offset this request started at.

    Raises _Retry on a dropped connection (the bytes received so far stay in ``.part``).
    """
    import http.client

    part = target.part
    offset = part.stat().st_size if part.exists() else 0
    if target.size is not None and offset > target.size:
        part.unlink()
        offset = 0
    if offset and offset == target.size:
        return _sha256_file(part).hexdigest(), offset, offset  # complete already, only verify

    with _open(target, offset) as response:
        total: int | None
        if offset and response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                part.unlink(missing_ok=True)
                raise _Retry(f"the server answered the resume request with a wrong range ({match and match.group(0)!r})")
            total = None if match.group(3) == "*" else int(match.group(3))
        else:
            offset = 0  # the server ignored Range (200): restart cleanly from byte 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if total is not None and target.size is not None and total != target.size:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"cannot download {target.label} from {target.url}: the server's file has {total} bytes, "
                f"expected {target.size}"
            )

        digest = _sha256_file(part, offset) if offset else hashlib.sha256()
        received = offset
        bar.reset(total=total or target.size)
        bar.update(offset)
        with open(part, "r+b" if offset else "wb") as out:
            out.seek(offset)
            out.truncate()
            while True:
                try:
                    block = response.read(CHUNK)
                except (http.client.HTTPException, OSError) as exc:  # reset, timeout, incomplete read
                    raise _Retry(f"connection lost after {received} bytes ({exc or type(exc).__name__})") from exc
                if not block:
                    break
                out.write(block)  # an OSError here (disk full) is not transient: it propagates
                digest.update(block)
                received += len(block)
                bar.update(len(block))
            expected = total if total is not None else target.size
            if expected is not None and received < expected:
                raise _Retry(f"connection closed after {received} of {expected} bytes")
            out.flush()
            os.fsync(out.fileno())
    return digest.hexdigest(), received, offset


def _fetch_with_retries(target: _Target, bar) -> tuple[str, int, bool]:
    """Fill ``target.part`` completely; return its sha256, size and whether it was resumed."""
    attempts = 0
    progressed = False  # a failure to connect after bytes have flowed is a hiccup, not "offline"
    while True:
        before = target.part.stat().st_size if target.part.exists() else 0
        try:
            sha256, size, start = _fetch_once(target, bar)
            return sha256, size, start > 0
        except _NoConnection as exc:
            if not progressed:
                raise DownloadError(
                    f"cannot download {target.label} from {target.url} ({exc}); "
                    f"without network, {_place_hint(target)}"
                ) from None
            failure: Exception = exc
        except _Retry as exc:
            failure = exc
        now = target.part.stat().st_size if target.part.exists() else 0
        progressed = progressed or now > before
        attempts += 1
        if attempts > RETRIES:
            raise DownloadError(
                f"cannot download {target.label} from {target.url}: gave up after {attempts} attempts "
                f"({failure}); run again to resume from {target.part}"
            )
        log.warning("download of %s interrupted (%s); retrying", target.url, failure)
        time.sleep(BACKOFF_S * 2 ** (attempts - 1))


def _transfer(target: _Target, progress: bool | None) -> None:
    """Fetch ``target`` into its ``.part`` with retries, verify it, then rename it into place."""
    log.info("downloading %s from %s to %s", target.label, target.url, target.path)
    bar = _progress_bar(target, progress)
    whole_retry_left = True
    try:
        while True:
            sha256, size, resumed = _fetch_with_retries(target, bar)
            bad_size = target.size is not None and size != target.size
            bad_hash = target.sha256 is not None and sha256 != target.sha256
            if not (bad_size or bad_hash):
                break
            target.part.unlink(missing_ok=True)
            if resumed and whole_retry_left:
                # The kept bytes may come from another version of the file (or be junk): a resumed
                # file that fails its check gets one clean download before it counts as bad.
                whole_retry_left = False
                log.warning("resumed download of %s failed verification; downloading it whole", target.url)
                continue
            if bad_size:
                raise DownloadError(
                    f"cannot download {target.label} from {target.url}: got {size} bytes, expected {target.size}"
                )
            raise DownloadError(
                f"checksum mismatch for {target.label} from {target.url}: expected sha256 {target.sha256}, "
                f"got {sha256}; the download was deleted"
            )
    finally:
        bar.close()
    os.replace(target.part, target.path)
    _write_record(target, sha256)


# ----------------------------------------------------------------------------------------------
# Public entry points


def download(
    name_or_url: str | ModelSpec,
    *,
    progress: bool | None = None,
    force: bool = False,
    registry: Mapping[str, ModelSpec] | None = None,
    sha256: str | None = None,
) -> Path:
    """Make sure a model file is in the cache and return its path.

    Args:
        name_or_url: a registry name (see :func:`actionclip.loading.registry.list_models`), a
            :class:`ModelSpec`, or an ``http(s)://`` URL.
        progress: show a progress bar on stderr: ``None`` (default) when stderr is a terminal,
            ``True`` always, ``False`` never.
        force: download again even when a good copy is cached.
        registry: look names up here instead of :data:`actionclip.loading.registry.MODELS`.
        sha256: expected hash, overriding the registry's (useful with a bare URL).

    Raises:
        UsageError: unknown model name.
        DownloadError: offline with nothing cached, server unreachable, HTTP error, checksum or
            size mismatch, or a corrupt cached file in offline mode. The message names the URL and
            the exact cache path to put the file at by hand.
    """
    spec = _hub_spec(name_or_url, registry)
    if spec is not None:
        from actionclip.loading import hub

        return hub.fetch(spec, force=force, progress=progress)
    target = _target(name_or_url, registry, sha256)
    if not target.url:  # no stable URL (Google Drive, SharePoint): a file fetched by hand, or nothing
        if target.path.is_file():
            return target.path
        raise DownloadError(f"{target.label} cannot be downloaded automatically: fetch it by hand from "
                            f"{target.manual or 'its source'}, then pass the file's path as the model "
                            f"(--model PATH), or save it as {target.path} to load it by name")
    problem = None
    if not force and target.path.exists():
        problem = _cache_problem(target)
        if problem is None:
            return target.path
    if is_offline():
        if problem:
            state = f"the cached file is unusable: {problem}"
        else:
            state = "a fresh download was asked for" if force else "it is not in the cache"
        raise DownloadError(
            f"{target.label}: {state}, and offline mode is on (ACTIONCLIP_OFFLINE/HF_HUB_OFFLINE); "
            f"{_place_hint(target)}"
        )
    try:
        target.path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot write to the model cache {target.path.parent}: {exc.strerror or exc}") from exc

    with _lock(target.lock):
        # Another process may have finished this file while we waited for the lock.
        if not force and target.path.exists():
            problem = _cache_problem(target)
            if problem is None:
                return target.path
        if problem:
            log.warning("re-downloading %s: %s", target.label, problem)
        try:
            _transfer(target, progress)
        except OSError as exc:  # disk full, permissions: keep .part so a rerun resumes
            raise DownloadError(f"cannot write {target.part} for {target.label}: {exc.strerror or exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                if target.part.stat().st_size == 0:  # nothing to resume from
                    target.part.unlink()
    return target.path


def resolve(
    name_or_path: str | os.PathLike | ModelSpec,
    *,
    progress: bool | None = None,
    registry: Mapping[str, ModelSpec] | None = None,
) -> Path:
    """A local checkpoint file or folder for ``name_or_path``.

    An existing file or directory is returned as is, without any network access. A registry
    name (or :class:`ModelSpec`, or URL) gives its verified cached file, downloaded on first use.

    Raises:
        CheckpointError: a path that does not exist.
        UsageError: neither a path nor a known model name (the message suggests close names).
        DownloadError: see :func:`download`.
    """
    if isinstance(name_or_path, ModelSpec):
        return download(name_or_path, progress=progress)
    text = os.fspath(name_or_path)
    if not text.strip():
        raise UsageError("empty model name: give a model name (see `actionclip models`) or a checkpoint path")
    path = Path(text).expanduser()
    if path.exists():
        return path
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(text):
        spec = None if isinstance(name_or_path, os.PathLike) else _find(text, registry)
        if spec is not None:  # a Hugging Face id such as microsoft/xclip-base-patch32
            return download(spec, progress=progress)
        hint = "" if path.suffix else " (and no model has that name: see `actionclip models`)"
        raise CheckpointError(f"{text}: no such file or directory{hint}")
    return download(text, progress=progress, registry=registry)


def _find(name: str, registry: Mapping[str, ModelSpec] | None) -> ModelSpec | None:
    try:
        return get_spec(name, dict(registry) if registry is not None else None)
    except UsageError:
        return None


def _hub_spec(what: str | ModelSpec, registry: Mapping[str, ModelSpec] | None) -> ModelSpec | None:
    """The spec of ``what`` when it is to come from the Hugging Face Hub: it has a ``hub_id``, and
    either ``huggingface_hub`` is installed or there is no plain URL to fall back on."""
    spec = what if isinstance(what, ModelSpec) else (None if _is_url(what) else _find(what, registry))
    if spec is None or not spec.hub_id:
        return None
    from actionclip.loading import hub

    return spec if hub.available() or not spec.url else None


def _looks_like_path(text: str) -> bool:
    if _is_url(text):
        return False
    suffix = Path(text).suffix.lower()
    return (
        "/" in text
        or os.sep in text
        or text.startswith((".", "~"))
        or suffix in {".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".onnx", ".json"}
    )

