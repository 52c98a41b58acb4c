"""CLIP tokenizing as the text encoders take it: token ids identical to OpenAI's ``clip.tokenize``.

Two tokenizers give the same ids (the tests sweep every built-in class list in every template and
odd text):

* :class:`~actionclip.text.fast_tokenizer.FastTokenizer`, used when Hugging Face's ``tokenizers``
  imports (the optional ``tokenizers`` extra; why optional: that module's docstring);
* :class:`~actionclip.text.simple_tokenizer.SimpleTokenizer`, OpenAI's pure-Python tokenizer
  restated, used otherwise, or when ``ACTIONCLIP_FAST_TOKENIZER=0`` asks for it (to compare, or to
  rule the fast path out when debugging).

:func:`token_ids` (numpy, torch-free: the ONNX backend uses it) frames the ids as ``[SOT, ids...,
EOT, 0, 0, ...]`` rows of ``context_length``; :func:`tokenize` wraps it as a torch tensor.

Importing this module is cheap: torch, ftfy, tokenizers and the vocabulary are loaded on first use.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import TYPE_CHECKING

from actionclip.errors import UsageError
from actionclip.text.simple_tokenizer import (
    DEFAULT_CONTEXT_LENGTH,
    EOT,
    EOT_TEXT,
    SOT,
    SOT_TEXT,
    VOCAB_SIZE,
    SimpleTokenizer,
    bytes_to_unicode,
    shorten,
)

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = [
    "SOT",
    "EOT",
    "SOT_TEXT",
    "EOT_TEXT",
    "VOCAB_SIZE",
    "DEFAULT_CONTEXT_LENGTH",
    "TOKENIZER_KINDS",
    "SimpleTokenizer",
    "bytes_to_unicode",
    "default_tokenizer",
    "fast_tokenizer_enabled",
    "token_ids",
    "tokenize",
]

#: ``auto``: the fast tokenizer when it can run, else the pure-Python one; ``fast``; ``python``.
TOKENIZER_KINDS = ("auto", "fast", "python")

_shared: dict[str, SimpleTokenizer] = {}
_shared_lock = threading.Lock()


def fast_tokenizer_enabled() -> bool:
    """False when ``ACTIONCLIP_FAST_TOKENIZER=0`` asks for the pure-Python tokenizer."""
    return os.environ.get("ACTIONCLIP_FAST_TOKENIZER", "1") != "0"


def default_tokenizer(kind: str = "auto") -> SimpleTokenizer:
    """The shared tokenizer over the bundled vocabulary, built on first call (about 0.3 s).

    Args:
        kind: ``auto`` (the fast one when ``tokenizers`` imports and ``ACTIONCLIP_FAST_TOKENIZER`` is
            not ``0``, else the pure-Python one), ``fast`` (raises :class:`UsageError` without
            ``tokenizers``) or ``python``.
    """
    if kind not in TOKENIZER_KINDS:
        raise UsageError(f"kind must be one of {', '.join(TOKENIZER_KINDS)}, got {kind!r}")
    if kind == "auto":
        kind = "fast" if fast_tokenizer_enabled() and _can_go_fast() else "python"
    tok = _shared.get(kind)
    if tok is None:
        with _shared_lock:
            tok = _shared.get(kind)
            if tok is None:
                tok = _shared[kind] = _build(kind)
    return tok


@functools.cache
def _can_go_fast() -> bool:
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True


def _build(kind: str) -> SimpleTokenizer:
    if kind == "python":
        return SimpleTokenizer()
    from actionclip.extras import require
    from actionclip.text.fast_tokenizer import FastTokenizer

    require("tokenizers", "the fast tokenizer")
    return FastTokenizer()


def token_ids(
    texts: str | Sequence[str],
    context_length: int = DEFAULT_CONTEXT_LENGTH,
    truncate: bool = True,
    tokenizer: SimpleTokenizer | None = None,
) -> np.ndarray:
    """Token ids of one text or a sequence of texts, as CLIP's text encoder takes them: int64 numpy
    ``[N, context_length]``. Torch-free (the ONNX backend uses it); :func:`tokenize` wraps it.

    Each row is ``[SOT, ids..., EOT]`` padded with zeros to ``context_length`` (the text encoder's
    positional-embedding length; 77 for all OpenAI models).

    Args:
        texts: a string or a sequence (any iterable) of strings.
        context_length: row length, at least 2 (room for the start and end tokens).
        truncate: when a text is too long, cut it to ``context_length`` and make the last id the end
            token (the text encoder pools at the end token, so it must be present). With ``False`` a
            too-long text raises :class:`~actionclip.errors.UsageError` instead.
        tokenizer: the tokenizer to use; default :func:`default_tokenizer`.
    """
    import numpy as np

    if isinstance(texts, str):
        texts = [texts]
    elif isinstance(texts, Iterable):
        texts = list(texts)  # also takes generators, numpy string arrays, pandas columns
    else:
        raise UsageError(f"tokenize expects a string or a sequence of strings, got {type(texts).__name__}")
    if isinstance(context_length, bool) or not isinstance(context_length, int) or context_length < 2:
        raise UsageError(
            f"context_length must be an integer >= 2 (start and end tokens), got {context_length!r}"
        )
    tok = tokenizer if tokenizer is not None else default_tokenizer()
    room = context_length - 2
    bodies: list[list[int]] = []
    for row, text in enumerate(texts):
        if not isinstance(text, str):
            raise UsageError(f"tokenize expects strings, got {type(text).__name__} at position {row}: {text!r:.60}")
        ids = tok.encode(text)
        if len(ids) > room:
            if not truncate:
                raise UsageError(
                    f"text {shorten(text)!r} is {len(ids) + 2} tokens long with start/end tokens, "
                    f"more than the context length {context_length}"
                )
            # clip.tokenize's rule: cut the framed row to context_length, then make its last id the
            # end token - the same as keeping the first context_length - 2 ids.
            ids = ids[:room]
        bodies.append(ids)
    # One scatter instead of a numpy assignment per row (which cost as much as the fast tokenizer).
    n = len(bodies)
    result = np.zeros((n, context_length), dtype=np.int64)
    lengths = np.fromiter(map(len, bodies), dtype=np.int64, count=n)
    flat = np.fromiter(chain.from_iterable(bodies), dtype=np.int64, count=int(lengths.sum()))
    rows = np.repeat(np.arange(n), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    result[rows, np.arange(flat.size) - starts + 1] = flat
    result[:, 0] = tok.sot
    result[np.arange(n), lengths + 1] = tok.eot
    return result


def tokenize(
    texts: str | Sequence[str],
    context_length: int = DEFAULT_CONTEXT_LENGTH,
    truncate: bool = True,
) -> torch.Tensor:
    """:func:`token_ids` as a ``torch.long`` tensor ``[len(texts), context_length]`` (``[1,
    context_length]`` for a single string): the ids of OpenAI's ``clip.tokenize``."""
    import torch

    return torch.from_numpy(token_ids(texts, context_length, truncate))
