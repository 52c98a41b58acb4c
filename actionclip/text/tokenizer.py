"""CLIP byte-pair-encoding tokenizer, offline, giving the same token ids as OpenAI's ``clip.tokenize``.

The vocabulary is OpenAI's ``bpe_simple_vocab_16e6.txt.gz`` (MIT licence, see
``data/LICENSE-CLIP-BPE.txt``), shipped as package data and read lazily on first use.

Pipeline (each step mirrors OpenAI's tokenizer, since any deviation changes ids for some input):

1. clean-up: ``ftfy.fix_text``, HTML-unescape twice, strip, collapse whitespace runs to one space,
   lower-case;
2. split into words with the CLIP pattern (contractions, letter runs, single digits, runs of other
   symbols; the literal start/end markers are recognised as special tokens);
3. map each word's UTF-8 bytes to printable characters (:func:`bytes_to_unicode`) and apply the BPE
   merges in rank order, the last symbol of a word carrying the ``</w>`` end-of-word marker;
4. :func:`token_ids` frames the ids as ``[SOT, ids..., EOT, 0, 0, ...]`` of ``context_length``.

Importing this module is cheap: torch, ftfy and the vocabulary are loaded on first use.
"""

from __future__ import annotations

import functools
import gzip
import html
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from actionclip.errors import ActionCLIPError, UsageError

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
    "SimpleTokenizer",
    "bytes_to_unicode",
    "default_tokenizer",
    "token_ids",
    "tokenize",
]

SOT_TEXT = "<|startoftext|>"
EOT_TEXT = "<|endoftext|>"
# 256 byte symbols + 256 end-of-word byte symbols + merges + 2 special tokens
NUM_MERGES = 49152 - 256 - 2
VOCAB_SIZE = 2 * 256 + NUM_MERGES + 2
SOT = VOCAB_SIZE - 2  # 49406
EOT = VOCAB_SIZE - 1  # 49407
DEFAULT_CONTEXT_LENGTH = 77
END_OF_WORD = "</w>"

# Word pattern of OpenAI's tokenizer. Its exact alternation order matters: the special markers and
# English contractions are tried first, letters group into runs but digits stay single characters.
_WORD_PATTERN = (
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)

_BPE_CACHE_SIZE = 1 << 16


def _default_bpe_path() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "bpe_simple_vocab_16e6.txt.gz"


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """Map every byte value to a printable unicode character (the GPT-2/CLIP reversible byte map).

    Printable latin-1 bytes map to themselves; the other 68 bytes (controls, space, ...) map to the
    characters from U+0100 upward in byte order, so BPE never sees whitespace or control characters.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\N{INVERTED EXCLAMATION MARK}"), ord("\N{NOT SIGN}") + 1),
        *range(ord("\N{REGISTERED SIGN}"), ord("\N{LATIN SMALL LETTER Y WITH DIAERESIS}") + 1),
    ]
    mapping = {b: chr(b) for b in printable}
    next_code = 256
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(next_code)
            next_code += 1
    # The vocabulary's first 256 ids follow this insertion order (printable bytes first).
    return mapping


def _shorten(text: str, limit: int = 60) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


class SimpleTokenizer:
    """CLIP's BPE tokenizer: ``encode`` text to ids (no start/end tokens), ``decode`` ids to text.

    Args:
        bpe_path: gzip-compressed merges file; defaults to the copy shipped with actionclip.
    """

    def __init__(self, bpe_path: str | Path | None = None) -> None:
        import ftfy  # deferred: ftfy's import costs more than the rest of this module
        import regex

        self._fix_text = ftfy.fix_text
        self._word_re = regex.compile(_WORD_PATTERN, regex.IGNORECASE)
        self._space_re = regex.compile(r"\s+")

        path = Path(bpe_path) if bpe_path is not None else _default_bpe_path()
        merges = _read_merges(path)

        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        byte_symbols = list(self.byte_encoder.values())
        vocab = byte_symbols + [s + END_OF_WORD for s in byte_symbols]
        vocab += ["".join(pair) for pair in merges]
        vocab += [SOT_TEXT, EOT_TEXT]
        self.encoder: dict[str, int] = {token: i for i, token in enumerate(vocab)}
        self.decoder: dict[int, str] = dict(enumerate(vocab))
        self.bpe_ranks: dict[tuple[str, str], int] = {pair: i for i, pair in enumerate(merges)}
        self.sot = self.encoder[SOT_TEXT]
        self.eot = self.encoder[EOT_TEXT]
        # A bounded cache: prompts repeat words a lot, but a long-running process (live streams,
        # datasets) must not grow without limit.
        self._bpe_cached = functools.lru_cache(maxsize=_BPE_CACHE_SIZE)(self._bpe)

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def clean(self, text: str) -> str:
        """Normalise text as CLIP was trained: fix mojibake, unescape HTML, squeeze spaces, lower-case."""
        text = self._fix_text(text)
        # Twice, as OpenAI does: web text is often escaped two times ("&amp;amp;").
        text = html.unescape(html.unescape(text)).strip()
        return self._space_re.sub(" ", text).strip().lower()

    def words(self, text: str) -> list[str]:
        """Split already cleaned text into the words BPE runs on."""
        return self._word_re.findall(text)

    def bpe(self, word: str) -> tuple[str, ...]:
        """BPE symbols of one byte-mapped word (the last one ends with ``</w>``)."""
        return self._bpe_cached(word)

    def _bpe(self, word: str) -> tuple[str, ...]:
        symbols = [*word[:-1], word[-1] + END_OF_WORD]
        ranks = self.bpe_ranks
        while len(symbols) > 1:
            # The lowest-ranked adjacent pair present in the word merges next, everywhere at once.
            best_rank, best = None, None
            for pair in zip(symbols, symbols[1:]):
                rank = ranks.get(pair)
                if rank is not None and (best_rank is None or rank < best_rank):
                    best_rank, best = rank, pair
            if best is None:
                break
            first, second = best
            merged: list[str] = []
            i = 0
            n = len(symbols)
            while i < n:
                if i < n - 1 and symbols[i] == first and symbols[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return tuple(symbols)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without start/end tokens or padding."""
        ids: list[int] = []
        byte_encoder = self.byte_encoder
        encoder = self.encoder
        for word in self.words(self.clean(text)):
            if word == SOT_TEXT or word == EOT_TEXT:
                # OpenAI's pattern matches the literal markers, which then map to the special ids.
                ids.append(encoder[word])
                continue
            mapped = "".join(byte_encoder[b] for b in word.encode("utf-8"))
            ids.extend(encoder[symbol] for symbol in self.bpe(mapped))
        return ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Text of token ids (lower-cased and cleaned, as the tokenizer saw it).

        With ``skip_special_tokens`` (default) start tokens are dropped and decoding stops at the
        first end token, so a padded row of :func:`tokenize` decodes to its text. Word boundaries
        (``</w>``) become single spaces; trailing space is removed.
        """
        buffer = bytearray()
        out: list[str] = []
        for raw in ids:
            token_id = int(raw)
            if token_id == self.sot or token_id == self.eot:
                if skip_special_tokens:
                    if token_id == self.eot:
                        break
                    continue
                # Special markers are not byte-mapped symbols; emit them verbatim.
                out.append(buffer.decode("utf-8", errors="replace"))
                buffer.clear()
                out.append(self.decoder[token_id])
                continue
            symbol = self.decoder.get(token_id)
            if symbol is None:
                raise UsageError(
                    f"cannot decode token id {token_id}: CLIP token ids are 0..{len(self.decoder) - 1}"
                )
            # Decode per symbol, so text that itself contains "</w>" is not mistaken for a boundary.
            end_of_word = symbol.endswith(END_OF_WORD)
            if end_of_word:
                symbol = symbol[: -len(END_OF_WORD)]
            buffer.extend(self.byte_decoder[c] for c in symbol)
            if end_of_word:
                buffer.extend(b" ")
        # Ids cut inside a multi-byte character show U+FFFD rather than fail.
        out.append(buffer.decode("utf-8", errors="replace"))
        return "".join(out).rstrip()


def _read_merges(path: Path) -> list[tuple[str, str]]:
    try:
        lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ActionCLIPError(f"cannot read the CLIP BPE vocabulary {path}: {exc}") from exc
    # Line 0 is a version header; OpenAI uses exactly the next NUM_MERGES merges.
    body = lines[1 : NUM_MERGES + 1]
    merges: list[tuple[str, str]] = []
    for number, line in enumerate(body, start=2):
        parts = line.split()
        if len(parts) != 2:
            raise ActionCLIPError(
                f"cannot read the CLIP BPE vocabulary {path}: line {number} is not a merge pair: {line!r}"
            )
        merges.append((parts[0], parts[1]))
    if len(merges) != NUM_MERGES:
        raise ActionCLIPError(
            f"cannot read the CLIP BPE vocabulary {path}: {len(merges)} merges, expected {NUM_MERGES}"
        )
    return merges


_default: SimpleTokenizer | None = None
_default_lock = threading.Lock()


def default_tokenizer() -> SimpleTokenizer:
    """The shared tokenizer using the bundled vocabulary, built on first call (about 0.3 s)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = SimpleTokenizer()
    return _default


def token_ids(
    texts: str | Sequence[str],
    context_length: int = DEFAULT_CONTEXT_LENGTH,
    truncate: bool = True,
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
    tok = default_tokenizer()
    result = np.zeros((len(texts), context_length), dtype=np.int64)
    for row, text in enumerate(texts):
        if not isinstance(text, str):
            raise UsageError(f"tokenize expects strings, got {type(text).__name__} at position {row}: {text!r:.60}")
        ids = [tok.sot, *tok.encode(text), tok.eot]
        if len(ids) > context_length:
            if not truncate:
                raise UsageError(
                    f"text {_shorten(text)!r} is {len(ids)} tokens long with start/end tokens, "
                    f"more than the context length {context_length}"
                )
            ids = ids[:context_length]
            ids[-1] = tok.eot
        result[row, : len(ids)] = ids
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
