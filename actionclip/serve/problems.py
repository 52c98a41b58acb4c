"""Every error a client can meet, as ``{"error": "<one line>"}`` with its HTTP status; never a traceback.

The library already words its errors for people (:class:`~actionclip.errors.ActionCLIPError`: one
line naming the input and the cause); here each becomes a status: a bad request (400) for what the
client sent, 401 for a missing or wrong token, 413 for an upload over the limit, 503 (with
``Retry-After``) when the server is full or stopping. An unexpected failure is a 500 with one line
naming its type; the traceback goes to the server's log only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from actionclip.errors import ActionCLIPError, CheckpointError, DownloadError

log = logging.getLogger("actionclip.serve")

__all__ = ["Problem", "one_line", "status_of", "as_problem", "problem_response", "install_handlers"]


class Problem(Exception):
    """An HTTP error answer: ``status``, a one-line ``message`` and extra ``headers``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = int(status)
        self.message = one_line(message)
        self.headers = dict(headers or {})


def one_line(text: Any) -> str:
    """``text`` folded onto one line (FFmpeg and pydantic messages may span several)."""
    return " ".join(str(text).split()) or "error"


def status_of(exc: BaseException) -> int:
    """The status of a library error: the model's own trouble is the server's (500), the rest is the request's."""
    if isinstance(exc, (CheckpointError, DownloadError)):
        return 500
    return 400 if isinstance(exc, ActionCLIPError) else 500


def as_problem(exc: BaseException) -> Problem:
    """Any exception as a :class:`Problem`."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, ActionCLIPError):
        return Problem(status_of(exc), str(exc))
    return Problem(500, f"internal error ({type(exc).__name__}: {exc})")


def problem_response(problem: Problem) -> Any:
    """The JSON response of a :class:`Problem`."""
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": problem.message}, status_code=problem.status, headers=problem.headers)


def install_handlers(app: Any) -> None:
    """Make every error ``app`` can raise answer ``{"error": "<one line>"}`` with its status."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import Response
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    @app.exception_handler(Problem)
    async def _problem(_request: Any, exc: Problem) -> Any:
        return problem_response(exc)

    @app.exception_handler(HTTPException)  # 404, 405 from the router
    async def _http(_request: Any, exc: HTTPException) -> Any:
        return problem_response(Problem(exc.status_code, str(exc.detail), getattr(exc, "headers", None)))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Any, exc: RequestValidationError) -> Any:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return problem_response(Problem(400, f"{where}: {first.get('msg', 'invalid request')}"))

    @app.exception_handler(ClientDisconnect)
    async def _gone(_request: Any, _exc: ClientDisconnect) -> Any:
        log.info("a client went away during its upload")
        return Response(status_code=400)  # nobody reads it

    @app.exception_handler(ActionCLIPError)
    async def _library(_request: Any, exc: ActionCLIPError) -> Any:
        return problem_response(as_problem(exc))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Any, exc: Exception) -> Any:
        # Starlette logs the traceback after this answer: the server's log keeps it, the client gets one line.
        return problem_response(as_problem(exc))
