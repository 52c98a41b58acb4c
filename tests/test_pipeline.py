"""actionclip.pipeline.prefetch: same results as the sequential path, in order, errors per item."""

from __future__ import annotations

import random
import threading
import time

import pytest

from actionclip.pipeline import default_workers, prefetch


def _work(x: int) -> int:
    # Random delays make completion order differ from input order.
    time.sleep(random.random() * 0.01)
    if x % 7 == 3:
        raise ValueError(f"bad item {x}")
    return x * x


def _normalise(pairs):
    return [(i, ("error", str(r)) if isinstance(r, Exception) else ("ok", r)) for i, r in pairs]


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_threads_match_sequential_order_and_errors(workers):
    items = list(range(40))
    sequential = _normalise(prefetch(_work, items, workers=0))
    pooled = _normalise(prefetch(_work, items, workers=workers, ahead=3))
    assert pooled == sequential
    assert [i for i, _ in pooled] == items
    assert sum(kind == "error" for _, (kind, _) in pooled) == 6  # 3, 10, 17, 24, 31, 38


def test_processes_match_sequential():
    items = list(range(12))
    assert _normalise(prefetch(_work, items, workers=2, processes=True)) == _normalise(
        prefetch(_work, items, workers=0)
    )


def test_exception_object_is_returned_not_raised():
    [(item, result)] = list(prefetch(_work, [3], workers=2))
    assert item == 3 and isinstance(result, ValueError) and "bad item 3" in str(result)


def test_bounded_in_flight_and_lazy_input():
    """Never more than `ahead` items pulled from the source beyond what was consumed."""
    pulled = 0
    lock = threading.Lock()

    def source():
        nonlocal pulled
        for i in range(100):
            with lock:
                pulled += 1
            yield i

    gen = prefetch(lambda x: x, source(), workers=2, ahead=5)
    for consumed, (item, result) in enumerate(gen, start=1):
        assert item == result
        # at most `ahead` pending after the one just yielded was popped
        assert pulled - consumed <= 5
        if consumed == 10:
            break
    gen.close()
    assert pulled <= 15


def test_concurrency_actually_overlaps():
    """4 workers run 4 items at the same time: each item waits at a barrier that only opens when all 4
    are inside (a pool that ran them one by one would break the barrier). The wall-clock figure is in
    benchmarks/bench_pipeline.py."""
    import threading

    barrier = threading.Barrier(4, timeout=10)

    def meet(x):
        barrier.wait()
        return x

    results = list(prefetch(meet, range(8), workers=4))
    assert [r for _, r in results] == list(range(8))


def test_early_close_stops_submitting():
    calls = []

    def fn(x):
        calls.append(x)
        time.sleep(0.01)
        return x

    gen = prefetch(fn, range(1000), workers=2, ahead=4)
    next(gen)
    gen.close()
    assert len(calls) <= 5


@pytest.mark.parametrize("workers", [0, 2])
def test_keyboard_interrupt_propagates(workers):
    def fn(x):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        list(prefetch(fn, [1], workers=workers))


def test_invalid_workers_and_default():
    with pytest.raises(ValueError):
        list(prefetch(_work, [1], workers=-1))
    from actionclip.workers import available_cores

    assert default_workers() == available_cores() >= 1  # the --workers rule: one decode process per core
