"""What other libraries print (warnings, log lines, progress bars), kept out of a command's output.

A command's stderr is for our own lines: progress, one line per failed input, a summary. The libraries
underneath talk too: LanceDB's Rust core logs deprecation notices, Ray logs its start-up and the
driver's C++ core worker logs actor notes, LanceDB warns when Ray forks after it was imported, the Hub
client logs each retry. None of that is something a user can act on, so the CLI runs each command
inside :func:`quiet` and shows it all only under ``--verbose``.

As a library (no :func:`quiet` call) nothing changes: the process's warnings and logging stay as the
caller set them, and :func:`verbose` answers True.

Native code and child processes read their settings from the environment when they start, so those
are set as defaults (a value the user exported wins) before any of those libraries is imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from typing import Iterator

__all__ = ["quiet", "verbose", "library_log_level"]

_verbose = True

# Python loggers of the libraries the commands drive.
_LOGGERS = ("ray", "lancedb", "pyarrow", "huggingface_hub", "transformers", "filelock", "urllib3", "httpx")

# Read by native code or child processes at start-up: only errors a user must see get through.
_QUIET_ENV = {
    "LANCE_LOG": "error",  # LanceDB's Rust core (its deprecation notices are WARN)
    # Ray's C++ core worker in this process: its note on each Ray Data actor (ray-project/ray#57733) is
    # logged at ERROR. Ray still prints one INFO line saying it read this setting.
    "RAY_BACKEND_LOG_LEVEL": "fatal",
    "PYTHONWARNINGS": "ignore",  # Python children: decoding processes, Ray's workers
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


@contextlib.contextmanager
def quiet(verbose: bool = False) -> Iterator[None]:
    """While the block runs, hide library chatter (in this process and the children it starts) unless
    ``verbose``; everything is as before afterwards (``actionclip.cli.main`` may run in-process).

    Only warnings attributed to other packages are ignored; ours (``actionclip.*``) still show."""
    global _verbose
    before = _verbose
    saved_env = {key: os.environ.get(key) for key in _QUIET_ENV}
    saved_levels = {name: logging.getLogger(name).level for name in _LOGGERS}
    with warnings.catch_warnings():
        _verbose = bool(verbose)
        if not verbose:
            for key, value in _QUIET_ENV.items():
                os.environ.setdefault(key, value)
            warnings.filterwarnings("ignore")
            warnings.filterwarnings("default", module=r"actionclip(\.|$)")
            for name in _LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)
        try:
            yield
        finally:
            _verbose = before
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            for name, level in saved_levels.items():
                logging.getLogger(name).setLevel(level)


def verbose() -> bool:
    """Whether library chatter is shown (True unless :func:`quiet` hid it)."""
    return _verbose


def library_log_level() -> str:
    """The level to hand a library that configures its own logging (Ray's ``logging_level``)."""
    return "WARNING" if _verbose else "ERROR"
