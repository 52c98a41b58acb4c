"""The optional extras (``pip install "actionclip[NAME]"``) and the one line that says one is missing.

The core install stays light; serving, indexes, Ray, the Hugging Face Hub, ONNX and the benchmark's
references are extras. Every piece that needs one calls :func:`require` before any work, so a
missing package is one line naming what needs it, what is missing and the install command - the
same sentence for every extra - rather than a ``ModuleNotFoundError`` traceback half-way through.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from actionclip.errors import UsageError

__all__ = ["EXTRAS", "require", "install_hint"]

# extra -> {module to import: the distribution that provides it}; pyproject.toml lists the same.
EXTRAS: dict[str, dict[str, str]] = {
    "serve": {"fastapi": "fastapi", "uvicorn": "uvicorn", "python_multipart": "python-multipart",
              "websockets": "websockets"},
    "index": {"lancedb": "lancedb", "pyarrow": "pyarrow"},
    "ray": {"ray": "ray[data]", "ray.data": "ray[data]"},
    "hub": {"huggingface_hub": "huggingface_hub"},
    "onnx": {"onnx": "onnx", "onnxruntime": "onnxruntime"},
    "bench": {"transformers": "transformers", "onnx": "onnx", "onnxruntime": "onnxruntime"},
    "tokenizers": {"tokenizers": "tokenizers"},
    # NVDEC decoding (actionclip.video.nvdec): it falls back to the CPU with one line instead of
    # requiring it, and imports only where an NVIDIA driver is (never in the test extra).
    "nvdec": {"PyNvVideoCodec": "pynvvideocodec"},
}


def install_hint(extra: str) -> str:
    """The install command of ``extra``."""
    return f'pip install "actionclip[{extra}]"'


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def require(extra: str, what: str, *, modules: Iterable[str] | None = None, alternative: str = "") -> None:
    """Raise a one-line :class:`UsageError` when a module of ``extra`` cannot be imported.

    ``what`` names what needs it ("serving", "video indexes"); ``modules`` narrows the check to the
    modules this use needs (default: all of the extra's); ``alternative`` is appended in brackets
    (e.g. how to do without).
    """
    table = EXTRAS[extra]
    wanted = list(modules) if modules is not None else list(table)
    missing = list(dict.fromkeys(table.get(m, m) for m in wanted if not _importable(m)))
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        tail = f" ({alternative})" if alternative else ""
        raise UsageError(f"{what} needs {', '.join(missing)}, which {verb} not installed: "
                         f"{install_hint(extra)}{tail}")
