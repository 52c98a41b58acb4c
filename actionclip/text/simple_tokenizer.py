"""CLIP's byte-pair-encoding tokenizer in pure Python: OpenAI's reference, restated.

The same token ids as OpenAI's ``clip.tokenize`` by following its steps one by one; it is the
fallback of :mod:`actionclip.text.tokenizer` when the fast path (:mod:`actionclip.text.fast_tokenizer`)
cannot run, and the reference that path is tested against.

The vocabulary is OpenAI's ``bpe_simple_vocab_16e6.txt.gz`` (MIT licence, see
``data/LICENSE-CLIP-BPE.txt``), shipped as package data and read lazily on first use.

Pipeline (each step mirrors OpenAI's tokenizer, since any deviation changes ids for some input):

1. clean-up: ``ftfy.fix_text``, HTML-unescape twice, strip, collapse whitespace runs to one space,
   lower-case;
2. split into words with the CLIP pattern (contractions, letter runs, single digits, runs of other
   symbols; the literal start/end markers are recognised as special tokens);
3. map each word's UTF-8 bytes to printable characters (:func:`bytes_to_unicode`) and apply the BPE
   merges in rank order, the last symbol of a word carrying the ``</w>`` end-of-word marker;
4. :func:`actionclip.text.tokenizer.token_ids` frames the ids as ``[SOT, ids..., EOT, 0, 0, ...]``.

Importing this module is cheap: ftfy and the vocabulary are loaded when a tokenizer is built.
"""

from __future__ import annotations

import functools
import gzip
import html
from collections.abc import Iterable
from pathlib import Path

from actionclip.errors import ActionCLIPError, UsageError

__all__ = [
    "SOT",
    "EOT",
    "SOT_TEXT",
    "EOT_TEXT",
    "VOCAB_SIZE",
    "DEFAULT_CONTEXT_LENGTH",
    "END_OF_WORD",
    "SimpleTokenizer",
    "bytes_to_unicode",
    "shorten",
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


def shorten(text: str, limit: int = 60) -> str:
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
