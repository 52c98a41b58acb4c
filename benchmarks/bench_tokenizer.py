"""Tokenizing speed: our fast tokenizer vs our pure-Python one vs Hugging Face's CLIPTokenizer.

Goal (issue 18 part 3): the 6,400 Kinetics-400 prompts (400 classes x ActionCLIP's 16 templates)
tokenize >= 5x faster with the fast tokenizer than with the pure-Python one (warm: a label set is
usually tokenized more than once per process, e.g. by every `classify` call of a server).

Cases, each implementation called in turn (A, B, C, A, B, C ...) so that a shared machine's load
changes hit all alike; medians reported, with the load average:

- **warm**: the same tokenizer object again (caches filled by a first call);
- **cold**: a new tokenizer object for every call (vocabulary load not timed, caches empty);
- **warm, non-ASCII**: the prompts in French quotes (``« ... »``), so that every text takes OpenAI's
  full clean-up (ftfy, HTML unescape) on the fast path too;
- **new words**: 2,000 ten-word captions of random letter strings, cold: nearly every word is new,
  so this shows what the Rust BPE brings over the same path with Python's BPE for new words
  (``fast, Python BPE``).

Everything runs on one thread (``TOKENIZERS_PARALLELISM=false``; ours has no threads).

    python benchmarks/bench_tokenizer.py [--repeats 7] [--json FILE]
    python benchmarks/bench_tokenizer.py --dry-run      # tiny sizes: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # before tokenizers is imported: one thread

import numpy as np

from actionclip.bench.tokenizing import hf_clip_tokenizer, hf_token_ids
from actionclip.text.classes import builtin_labels
from actionclip.text.fast_tokenizer import FastTokenizer
from actionclip.text.simple_tokenizer import SimpleTokenizer
from actionclip.text.templates import TEMPLATES
from actionclip.text.tokenizer import token_ids

GOAL = 5.0


class _PythonBPEForNewWords(FastTokenizer):
    """The fast path with the pure tokenizer's BPE for new chunks: what Rust adds, measured."""

    def _learn(self, chunk: str) -> tuple[int, ...]:
        ids = tuple(SimpleTokenizer.encode(self, chunk))
        self._chunks[chunk] = ids
        return ids


# An entry: (untimed setup giving a tokenizer, timed call with it)
Entry = tuple[Callable[[], object], Callable[[object], object]]


def _race(entries: dict[str, Entry], repeats: int) -> dict[str, list[float]]:
    for setup, fn in entries.values():  # warm-up
        fn(setup())
    times: dict[str, list[float]] = {name: [] for name in entries}
    for _ in range(repeats):
        for name, (setup, fn) in entries.items():
            arg = setup()
            start = time.perf_counter()
            fn(arg)
            times[name].append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", metavar="FILE", help="also write every sample as JSON")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes, to check that the benchmark runs")
    args = p.parse_args(argv)
    labels = builtin_labels("k400")
    repeats, captions = args.repeats, 2000
    if args.dry_run:
        labels, repeats, captions = labels[:10], 2, 20
    prompts = [template.format(label) for template in TEMPLATES for label in labels]
    accented = [f"« {prompt} »" for prompt in prompts]
    rng = random.Random(0)
    new_words = [" ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 12)))
                          for _ in range(10)) for _ in range(captions)]

    with tempfile.TemporaryDirectory(prefix="bench-tokenizer-") as tmp:
        try:
            hf = hf_clip_tokenizer(Path(tmp))
        except ImportError:
            hf = None
            print("# transformers not installed: no HF rows", file=sys.stderr)
        fast, pure = FastTokenizer(), SimpleTokenizer()
        want = token_ids(prompts, tokenizer=pure)
        if not np.array_equal(token_ids(prompts, tokenizer=fast), want):
            raise SystemExit("fast and pure-Python tokenizers disagree on the prompts")
        if hf is not None and not np.array_equal(hf_token_ids(hf, prompts), want):
            raise SystemExit("HF's tokenizer disagrees with ours on the prompts")

        def ours(texts: list[str]) -> Callable[[object], object]:
            return lambda tok: token_ids(texts, tokenizer=tok)

        warm: dict[str, Entry] = {"actionclip fast": (lambda: fast, ours(prompts)),
                                  "actionclip python": (lambda: pure, ours(prompts))}
        if hf is not None:
            warm["hf-transformers"] = (lambda: hf, lambda tok: hf_token_ids(tok, prompts))
        cases: dict[str, tuple[list[str], dict[str, Entry]]] = {
            "warm": (prompts, warm),
            # a new tokenizer object for every call, built outside the timed call
            "cold": (prompts, {"actionclip fast": (FastTokenizer, ours(prompts)),
                               "actionclip python": (SimpleTokenizer, ours(prompts))}),
            # every text needs OpenAI's full clean-up (ftfy, HTML) on the fast path too
            "warm, non-ASCII": (accented, {"actionclip fast": (lambda: fast, ours(accented)),
                                           "actionclip python": (lambda: pure, ours(accented))}),
            "new words": (new_words, {"actionclip fast": (FastTokenizer, ours(new_words)),
                                      "fast, Python BPE": (_PythonBPEForNewWords, ours(new_words)),
                                      "actionclip python": (SimpleTokenizer, ours(new_words))}),
        }
        results = {case: _race(entries, repeats) for case, (_, entries) in cases.items()}

    load = os.getloadavg()
    print(f"Tokenizing, medians of {repeats} interleaved runs, one thread; load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print("| case | texts | implementation | median | texts/s | vs pure Python |")
    print("|---|---|---|---|---|---|")
    for case, times in results.items():
        count = len(cases[case][0])
        base = statistics.median(times["actionclip python"])
        for name, samples in times.items():
            median = statistics.median(samples)
            print(f"| {case} | {count:,} | {name} | {median * 1e3:.1f} ms | {count / median:,.0f} | "
                  f"{base / median:.1f}x |")
    speedup = statistics.median(results["warm"]["actionclip python"]) / statistics.median(
        results["warm"]["actionclip fast"])
    met = "met" if speedup >= GOAL else "NOT met"
    print(f"\n- {len(prompts):,} prompts, warm: fast {speedup:.1f}x the pure-Python tokenizer (goal >= {GOAL:g}x): {met}")
    if args.json:
        Path(args.json).write_text(json.dumps({"load_average": load, "repeats": repeats, "results": results,
                                               "speedup_warm": speedup}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
