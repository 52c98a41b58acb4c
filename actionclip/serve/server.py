"""The server process: a listening socket, uvicorn, and a graceful stop on SIGTERM.

The socket is bound before the model loads, so a port in use is one line at once rather than after
a minute of loading (and ``--port 0`` picks a free port, printed in the ``serving on`` line).

On the first SIGTERM or SIGINT the server *drains*: it keeps listening, answers every new request
503 (``Retry-After``), lets the requests in flight finish, then exits 0 (also after
``drain_timeout`` seconds, whatever is still running). A second signal stops it at once. Plain
uvicorn would stop accepting connections instead, so clients would see refused connections rather
than a 503 they can act on.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

from actionclip.errors import UsageError
from actionclip.serve.admission import Admission

__all__ = ["bind", "run_server"]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6), or a one-line :class:`UsageError`."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"{host}: cannot listen on this address ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise UsageError(f"{host}:{port}: cannot listen there ({exc.strerror or exc})") from None
    return sock


def run_server(app: Any, sock: socket.socket, admission: Admission, *, drain_timeout: float = 60.0,
               access_log: bool = False) -> None:
    """Serve ``app`` on ``sock`` until a signal (see the module notes); returns after a clean stop."""
    import uvicorn

    class _DrainingServer(uvicorn.Server):
        drain_deadline: float | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            if admission.draining:  # the second signal: stop now
                self.should_exit = self.force_exit = True
                return
            admission.drain()
            self.drain_deadline = time.monotonic() + drain_timeout

        async def on_tick(self, counter: int) -> bool:
            if admission.draining and (admission.in_flight == 0 or time.monotonic() > (self.drain_deadline or 0)):
                self.should_exit = True
            return await super().on_tick(counter)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn's own re-raises the signal after shutting down, which would end the process
            # with SIGTERM's status; a drained server has stopped cleanly and exits 0.
            handled = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    from uvicorn.config import WS_PROTOCOLS

    ws = "websockets-sansio" if "websockets-sansio" in WS_PROTOCOLS else "websockets"
    config = uvicorn.Config(app, log_level="info" if access_log else "warning", access_log=access_log,
                            ws=ws, ws_max_size=8 << 20, lifespan="on", timeout_graceful_shutdown=5)
    _DrainingServer(config).run(sockets=[sock])
