"""The optional Bearer token: every ``/v1`` call carries ``Authorization: Bearer <token>`` when the
server was given one (``--token``, or the ``ACTIONCLIP_SERVE_TOKEN`` environment variable).

Browsers cannot set headers on a WebSocket, so ``/v1/watch`` may carry the token as ``?token=``
instead. The page (``/``), its assets, ``/healthz`` and the API docs stay open: they hold nothing of
the users'. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from actionclip.serve.problems import Problem

__all__ = ["check_token"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="actionclip"'}


def check_token(expected: str | None, headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> None:
    """Raise a 401 :class:`Problem` unless the request carries ``expected`` (no-op when None)."""
    if not expected:
        return
    given = None
    scheme, _, value = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        given = value.strip()
    elif query is not None and query.get("token"):
        given = query["token"]
    if given is None:
        raise Problem(401, "missing token: send 'Authorization: Bearer <token>'", _CHALLENGE)
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise Problem(401, "wrong token", _CHALLENGE)
