"""``actionclip serve`` in a real child process, for tests and benchmarks (not public API).

:class:`ServerProcess` starts ``python -m actionclip serve ... --port 0``, reads the port from the
``serving ... on http://HOST:PORT`` line it prints once it can answer, and stops it with SIGTERM
(graceful) on exit. Everything the server writes to stderr is kept in ``log`` for failure messages.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ServerProcess"]

_READY = re.compile(r"serving .* on (http://\S+) ")


class ServerProcess:
    """A server child process: ``url`` once started; a context manager that stops it."""

    def __init__(self, args: Sequence[Any], env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None,
                 start_timeout: float = 120.0) -> None:
        self.args = [str(a) for a in args]
        self.env = {**os.environ, **(env or {})}
        self.cwd, self.start_timeout = cwd, start_timeout
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.lines: list[str] = []
        self._ready = threading.Event()

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def start(self) -> ServerProcess:
        cmd = [sys.executable, "-m", "actionclip", "serve", "--port", "0", *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     text=True, env=self.env, cwd=self.cwd)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        while not self._ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"actionclip serve did not start:\n{self.log}")
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            match = _READY.search(line)
            if match and not self._ready.is_set():
                self.url = match.group(1)
                self._ready.set()

    @property
    def port(self) -> int:
        assert self.url is not None
        return int(self.url.rsplit(":", 1)[1])

    def signal(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not stopped after ``timeout`` seconds; the exit code."""
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
