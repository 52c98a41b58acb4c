"""Helpers shared by the CLI test files: small videos and a CLI runner (the checkpoint fixtures are in conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_video(path: Path, seconds: float = 1.0, size: tuple[int, int] = (64, 48), fps: float = 10) -> Path:
    from actionclip._dev.videos import make_test_video

    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(make_test_video(path, seconds=seconds, size=size, fps=fps))


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m actionclip ARGS`` in a fresh interpreter, as a user would run it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "actionclip", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=REPO_ROOT,
    )


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("actionclip: error: ")]
