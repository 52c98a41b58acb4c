"""Who gets in: a bounded number of work requests at once, and none once the server is stopping.

Every ``/v1/classify`` or ``/v1/timeline`` call holds a *slot* from the moment it arrives (before
its upload is read) until it has answered; past ``limit`` slots a request is answered 503 at once,
with ``Retry-After`` estimated from recent service times, instead of piling up memory and latency.
Slots also say when a stopping server may exit: after SIGTERM (:meth:`Admission.drain`) new requests
get 503 while the ones holding slots finish.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator

from actionclip.serve.problems import Problem

__all__ = ["Admission"]


class Admission:
    """Counts work requests in flight; see the module notes."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, int(limit))
        self.in_flight = 0
        self.draining = False
        self.served = 0
        self.refused = 0
        self._mean_seconds = 1.0  # moving average of a request's time in the server
        self._lock = threading.Lock()

    def retry_after(self) -> int:
        """Seconds a refused client should wait: about one service time, at least 1."""
        return max(1, math.ceil(self._mean_seconds))

    def refuse_if_draining(self) -> None:
        if self.draining:
            self.refused += 1
            raise Problem(503, "the server is shutting down", {"Retry-After": str(self.retry_after())})

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a slot for the block, or raise 503 when the queue is full or the server is stopping."""
        with self._lock:
            self.refuse_if_draining()
            if self.in_flight >= self.limit:
                self.refused += 1
                raise Problem(503, f"the server is busy ({self.in_flight} requests queued); retry later",
                              {"Retry-After": str(self.retry_after())})
            self.in_flight += 1
        start = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1
                self.served += 1
                self._mean_seconds += 0.2 * (time.monotonic() - start - self._mean_seconds)

    def drain(self) -> None:
        """Refuse new requests from now on; those in flight go on."""
        self.draining = True

    def to_dict(self) -> dict[str, object]:
        return {"in_flight": self.in_flight, "limit": self.limit, "draining": self.draining,
                "served": self.served, "refused": self.refused, "retry_after": self.retry_after()}
