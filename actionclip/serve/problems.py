"""Every error a client can meet, as ``{"error": "<one line>"}`` with its HTTP status; never a traceback.

The library already words its errors for people (:class:`~actionclip.errors.ActionCLIPError`: one
line naming the input and the cause); here each becomes a status: a bad request (400) for what the
client sent, 401 for a missing or wrong token, 413 for an upload over the limit, 503 (with
``Retry-After``) when the server is full or stopping. An unexpected failure is a 500 with one line
naming its type; the traceback goes to the server's log only.
"""

from __future__ import annotations

from typing import Any, Mapping

from actionclip.errors import ActionCLIPError, CheckpointError, DownloadError

__all__ = ["Problem", "one_line", "status_of", "as_problem", "problem_response"]


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
