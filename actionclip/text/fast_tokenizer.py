"""The fast CLIP tokenizer: OpenAI's token ids, 8-14x faster than the pure-Python port on prompt sets.

:class:`~actionclip.text.simple_tokenizer.SimpleTokenizer` spends its time (6,400 Kinetics-400
prompts, one core) in ``ftfy.fix_text`` (about half), the word-splitting regex, mapping each word's
bytes and looking up its BPE symbols. :class:`FastTokenizer` gives the same ids with three changes:

1. **Clean-up only where it can change something.** Text made of printable ASCII, tabs and line
   breaks, without ``&``, is a fixed point of ``ftfy.fix_text`` (which only turns ``\\r`` into
   ``\\n`` there; the whitespace collapse erases the difference) and of ``html.unescape``: for it the
   clean-up is the whitespace collapse and ``lower()``. Any other text gets OpenAI's full clean-up.
2. **Ids per space-separated chunk, from a bounded cache.** After clean-up, words never contain or
   straddle a space, so a text's words are those of its chunks in order; a chunk (``"guitar,"``)
   seen before costs one dictionary lookup. A new chunk is split by OpenAI's own pattern (the pure
   path's ``regex``), so word boundaries and the literal ``<|startoftext|>`` markers follow OpenAI for
   any input.
3. **New words through Hugging Face's Rust BPE** (``tokenizers.models.BPE``), built in memory from
   the shipped merges with the same byte map and the ``</w>`` end-of-word suffix: no download.

Why not HF's whole Rust pipeline (``CLIPTokenizerFast``'s normaliser and ``Split`` pre-tokenizer)?
It skips ftfy and the double HTML unescape, lower-cases Σ without Python's final-sigma rule, finds
the end marker inside ``!<|endoftext|>`` where OpenAI's pattern does not, and its regex tables are
another Unicode version; and on prompt sets it is slower than this path (docs/speed.md).

**tokenizers is an optional extra** (``pip install "actionclip[tokenizers]"``; the ``test`` and
``bench`` extras include it), not a core dependency: it brings ``huggingface_hub`` and its own
dependencies into an install that does not otherwise need them, for a gain of ~0.1-0.2 s per
6,400 prompts, which a label set pays once (label embeddings are cached). Without it,
:mod:`actionclip.text.tokenizer` falls back to the pure-Python tokenizer.

Thread safety: lookups read the cache without a lock (single dictionary operations); a cache miss
takes the tokenizer's lock to compute, store and, when the cache is full, evict its oldest half, so
the Rust model is only ever called by one thread at a time and the cache stays bounded.
"""

from __future__ import annotations

import re
import threading
from itertools import islice
from pathlib import Path

from actionclip.text.simple_tokenizer import END_OF_WORD, EOT_TEXT, SOT_TEXT, SimpleTokenizer

__all__ = ["FastTokenizer", "CHUNK_CACHE_SIZE"]

#: Chunks (space-separated pieces of cleaned text) whose ids are kept: about 10 MB when full (ten-
#: letter words); Kinetics-600 in ActionCLIP's 16 templates fills ~1,750.
CHUNK_CACHE_SIZE = 1 << 15

# Text ftfy and html.unescape leave as it is (see the module docstring): printable ASCII but '&',
# tab, LF, CR.
_PLAIN = re.compile(r"[\t\n\r\x20-\x25\x27-\x7e]*")


class FastTokenizer(SimpleTokenizer):
    """:class:`~actionclip.text.simple_tokenizer.SimpleTokenizer` with a faster ``encode`` (same ids).

    Args:
        bpe_path: gzip-compressed merges file; defaults to the copy shipped with actionclip.
        cache_size: chunks whose ids are kept; when full, the oldest half is dropped.

    Raises ImportError when ``tokenizers`` is not installed.
    """

    def __init__(self, bpe_path: str | Path | None = None, cache_size: int = CHUNK_CACHE_SIZE) -> None:
        from tokenizers.models import BPE  # first: without it the caller takes the pure path

        super().__init__(bpe_path)
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size}")
        # Ids 0..49405 are the BPE symbols; the two markers are handled here, before BPE.
        symbols = {token: i for token, i in self.encoder.items() if i < self.sot}
        self._rust_bpe = BPE(vocab=symbols, merges=list(self.bpe_ranks), end_of_word_suffix=END_OF_WORD,
                             continuing_subword_prefix="", fuse_unk=False)
        # latin-1 decoding turns bytes into code points 0..255, which this table maps like byte_encoder.
        self._byte_table = {b: c for b, c in self.byte_encoder.items()}
        self._chunks: dict[str, tuple[int, ...]] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def clean(self, text: str) -> str:
        if _PLAIN.fullmatch(text) is not None:
            return " ".join(text.split()).lower()
        return super().clean(text)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        chunks = self._chunks
        for chunk in self.clean(text).split(" "):
            chunk_ids = chunks.get(chunk)
            if chunk_ids is None:
                chunk_ids = self._learn(chunk)
            ids += chunk_ids
        return ids

    def cache_info(self) -> tuple[int, int]:
        """(chunks cached now, the most it keeps)."""
        return len(self._chunks), self._cache_size

    def _learn(self, chunk: str) -> tuple[int, ...]:
        with self._lock:
            known = self._chunks.get(chunk)  # another thread may have just stored it
            if known is not None:
                return known
            ids: list[int] = []
            for word in self.words(chunk):
                if word == SOT_TEXT or word == EOT_TEXT:
                    ids.append(self.encoder[word])
                else:
                    mapped = word.encode("utf-8").decode("latin-1").translate(self._byte_table)
                    ids.extend(token.id for token in self._rust_bpe.tokenize(mapped))
            if len(self._chunks) >= self._cache_size:
                # Oldest first (insertion order); readers never iterate the dict, so this is safe.
                for old in list(islice(self._chunks, max(1, self._cache_size // 2))):
                    del self._chunks[old]
            self._chunks[chunk] = stored = tuple(ids)
            return stored
