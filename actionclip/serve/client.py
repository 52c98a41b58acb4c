"""A small client of the server's API, standard library only: for scripts, tests and benchmarks.

::

    from actionclip.serve.client import ServeClient
    client = ServeClient("http://127.0.0.1:8000", token=None)
    client.classify("clip.mp4", ["running", "walking"])["results"][0]

Each call opens one HTTP connection (so a client is safe to share between threads) and returns the
decoded JSON; an error answer raises :class:`ServeError` carrying the status, the server's one-line
message and the ``Retry-After`` header. :meth:`ServeClient.request` gives the raw status, headers and
body for anything else.
"""

from __future__ import annotations

import http.client
import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ServeClient", "ServeError", "Reply", "encode_form"]


class ServeError(Exception):
    """An error answer: ``status``, the server's ``message`` and its ``retry_after`` (seconds) if any."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message, self.retry_after = status, message, retry_after


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  #: lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def encode_form(fields: Iterable[tuple[str, Any]], video: tuple[str, bytes] | None = None) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its content type: text ``fields`` (repeat a name for a list),
    then the ``video`` file as ``(filename, bytes)``."""
    boundary = f"actionclip-{uuid.uuid4().hex}"
    parts = []
    for name, value in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    if video is not None:
        filename, data = video
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="{filename}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _form_fields(labels: Sequence[str], options: Mapping[str, Any]) -> list[tuple[str, Any]]:
    fields: list[tuple[str, Any]] = [("labels", label) for label in labels]
    for name, value in options.items():
        if value is None:
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            fields.append((name, item))
    return fields


class ServeClient:
    """Calls one server (see the module notes)."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 300.0) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.token, self.timeout = token, timeout

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            sent = dict(headers or {})
            if self.token and "Authorization" not in sent:
                sent["Authorization"] = f"Bearer {self.token}"
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def _json(self, reply: Reply) -> Any:
        if reply.status >= 400:
            try:
                message = reply.json().get("error", "")
            except (ValueError, AttributeError):
                message = reply.body.decode("utf-8", "replace")
            retry = reply.headers.get("retry-after")
            raise ServeError(reply.status, message, int(retry) if retry and retry.isdigit() else None)
        return reply.json()

    def get(self, path: str) -> Any:
        return self._json(self.request("GET", path))

    def post_form(self, path: str, fields: Iterable[tuple[str, Any]], video: str | os.PathLike | None = None) -> Any:
        upload = None if video is None else (Path(video).name, Path(video).read_bytes())
        body, content_type = encode_form(fields, upload)
        return self._json(self.request("POST", path, body, {"Content-Type": content_type}))

    def healthz(self) -> Any:
        return self.get("/healthz")

    def models(self) -> Any:
        return self.get("/v1/models")

    def classify(self, video: str | os.PathLike, labels: Sequence[str], **options: Any) -> Any:
        """``/v1/classify``: options ``templates``, ``top_k``, ``clips``, ``crops``."""
        return self.post_form("/v1/classify", _form_fields(labels, options), video)

    def search(self, text: str, k: int = 10, only: str | None = None) -> Any:
        """``/v1/search`` (a server started with ``--index``): ``{"query", "results"}``."""
        from urllib.parse import urlencode

        query = {"q": text, "k": k, **({"only": only} if only else {})}
        return self.get(f"/v1/search?{urlencode(query)}")

    def timeline(self, video: str | os.PathLike, labels: Sequence[str], **options: Any) -> Any:
        """``/v1/timeline``: options as :func:`actionclip.temporal.timeline.timeline`'s."""
        return self.post_form("/v1/timeline", _form_fields(labels, options), video)
