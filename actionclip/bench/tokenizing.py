"""Tokenizing, timed: our fast and pure-Python CLIP tokenizers and Hugging Face's, on the same prompts.

Used by ``actionclip bench`` (its ``tokenize`` row, and HF's text row, which tokenizes with HF's own
tokenizer as our text row does with ours) and by ``benchmarks/bench_tokenizer.py``.

HF's reference is ``transformers.CLIPTokenizer`` (backed by the Rust ``tokenizers`` pipeline in
transformers >= 5) loaded from ``vocab.json`` + ``merges.txt`` written from our shipped vocabulary
(no download), asked for what ``clip.tokenize`` gives: rows of 77 padded with id 0 (HF pads with the
end token by default), cut with the end token kept. On plain prompts its ids equal ours; it skips
OpenAI's ftfy / HTML clean-up, so on odd text they can differ (tests/test_tokenizer.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from actionclip.errors import UsageError
from actionclip.text.simple_tokenizer import DEFAULT_CONTEXT_LENGTH
from actionclip.text.tokenizer import default_tokenizer, token_ids

__all__ = ["hf_clip_tokenizer", "hf_token_ids", "tokenizer_impls"]


def hf_clip_tokenizer(folder: Path) -> Any:
    """``transformers.CLIPTokenizer`` over our vocabulary, its files written into ``folder``."""
    from transformers import CLIPTokenizer

    ours = default_tokenizer("python")  # its tables are the shipped vocabulary, read once
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(ours.encoder), encoding="utf-8")
    merges = "\n".join(" ".join(pair) for pair in ours.bpe_ranks)
    (folder / "merges.txt").write_text(f"#version: 0.2\n{merges}\n", encoding="utf-8")
    # pad "!" is id 0, OpenAI's padding
    return CLIPTokenizer.from_pretrained(str(folder), pad_token="!", local_files_only=True)


def hf_token_ids(hf_tokenizer: Any, prompts: Sequence[str], context_length: int = DEFAULT_CONTEXT_LENGTH,
                 padding: str = "max_length") -> np.ndarray:
    """HF's ids in ``clip.tokenize``'s layout; ``padding="longest"`` pads to the batch's longest
    (HF's usual zero-shot call)."""
    out = hf_tokenizer(list(prompts), padding=padding, max_length=context_length, truncation=True,
                       return_tensors="np")
    return out["input_ids"].astype(np.int64, copy=False)


def tokenizer_impls(hf_tokenizer: Any | None = None) -> dict[str, Callable[[Sequence[str]], np.ndarray]]:
    """Name -> tokenize ``[N, 77]``: ``actionclip fast`` (when ``tokenizers`` is installed),
    ``actionclip python``, and ``hf-transformers`` when a tokenizer is given."""
    impls: dict[str, Callable[[Sequence[str]], np.ndarray]] = {}
    try:
        fast = default_tokenizer("fast")
    except UsageError:  # no tokenizers: the row is left out
        fast = None
    if fast is not None:
        impls["actionclip fast"] = lambda prompts: token_ids(prompts, tokenizer=fast)
    pure = default_tokenizer("python")
    impls["actionclip python"] = lambda prompts: token_ids(prompts, tokenizer=pure)
    if hf_tokenizer is not None:
        impls["hf-transformers"] = lambda prompts: hf_token_ids(hf_tokenizer, prompts)
    return impls
