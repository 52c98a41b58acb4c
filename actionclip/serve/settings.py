"""Every limit and knob of a running server, in one frozen object.

The command line fills it (``actionclip serve --help`` documents each option); tests and embedders
build it directly. Defaults are sized for both a CPU and a GPU host: the batch size and the decoding
pool follow the device when not given (:meth:`ServeSettings.for_device`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = ["ServeSettings", "TOKEN_ENV"]

#: the environment variable a token may come from instead of ``--token`` (which shows in ``ps``)
TOKEN_ENV = "ACTIONCLIP_SERVE_TOKEN"


@dataclass(frozen=True)
class ServeSettings:
    """A server's limits and tuning.

    Attributes:
        host, port: where to listen (loopback unless told otherwise; port 0 picks a free one).
        token: the Bearer token every ``/v1`` call must carry, or None for an open server.
        max_upload_mib: largest upload accepted in MiB (2**20 bytes), checked while it streams (413 beyond).
        max_duration: longest video accepted, seconds (400 beyond).
        allow_urls: let a client name a server-side path or URL (``url`` field) instead of uploading.
        batch_size: most views encoded in one pass of the video encoder.
        max_wait: longest a request waits for others to share its pass, seconds.
        queue_size: most work requests admitted at once (uploading, decoding, queued, encoding);
            beyond it a request gets 503 with ``Retry-After``.
        workers: decode worker processes (0: decode in the thread pool; :mod:`actionclip.workers`).
        timelines: timelines computed at once (each is a long job).
        label_cache: label-embedding sets kept (LRU).
        max_labels: labels per request.
        max_views: clips x crops per request.
        temp_dir: where uploads are spooled (the system's temporary folder when None).
        drain_timeout: after SIGTERM, how long in-flight requests may take before the server stops anyway.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_upload_mib: float = 200.0
    max_duration: float = 600.0
    allow_urls: bool = False
    batch_size: int = 4
    max_wait: float = 0.01
    queue_size: int = 64
    workers: int = 2
    timelines: int = 1
    label_cache: int = 64
    max_labels: int = 1000
    max_views: int = 30
    temp_dir: Path | None = None
    drain_timeout: float = 60.0

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mib * 1024 * 1024)

    def for_device(self, device: str, *, batch_size: int | None = None, workers: int | None = None) -> ServeSettings:
        """These settings with the batch size and decoding pool sized for ``device`` where not given:
        a GPU encodes 32 views in about the time of a few; a CPU's matrix units are already busy with
        one clip's 400 rows, and past 4 clips a batch falls out of cache (docs/serve.md)."""
        from actionclip.workers import resolve_workers

        gpu = str(device).startswith("cuda")
        # The library's one rule: a decode process per core (a GPU host decodes for a fast encoder; on
        # a CPU the encoder's threads and the decoders share the cores, as in every other command).
        return replace(self, batch_size=batch_size or (32 if gpu else 4), workers=resolve_workers(workers))

    def with_token_from_env(self) -> ServeSettings:
        """The token from :data:`TOKEN_ENV` when none was given."""
        return self if self.token else replace(self, token=os.environ.get(TOKEN_ENV) or None)
