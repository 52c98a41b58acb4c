"""The server's parts without HTTP: the dynamic batcher, the label cache, and the engine with a model
whose video features are a :class:`~actionclip.model.scoring.VideoFeatures` (X-CLIP's kind)."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from actionclip.serve.batching import DynamicBatcher


def test_batcher_batches_concurrent_items_and_keeps_order():
    seen: list[list[int]] = []
    running, release = threading.Event(), threading.Event()

    def process(items):
        running.set()
        release.wait(5)  # hold the first pass so the others queue up behind it
        seen.append(list(items))
        return [i * 10 for i in items]

    batcher = DynamicBatcher(process, max_batch=4, max_wait=0.01)
    futures = [batcher.submit(0)]
    assert running.wait(5)  # the first pass is running alone
    futures += [batcher.submit(i) for i in range(1, 10)]
    release.set()
    assert [f.result(5) for f in futures] == [i * 10 for i in range(10)]
    batcher.close()
    assert seen[0] == [0]
    assert seen[1:] == [[1, 2, 3, 4], [5, 6, 7, 8], [9]]
    assert batcher.stats.items == 10 and batcher.stats.largest == 4


def test_batcher_counts_units_skips_cancelled_and_fails_whole_batches():
    running, hold = threading.Event(), threading.Event()

    def process(items):
        running.set()
        hold.wait(5)
        if "boom" in items:
            raise ValueError("bad batch")
        return [len(x) for x in items]

    batcher = DynamicBatcher(process, max_batch=5, max_wait=0.05, size=len)
    first = batcher.submit("a")
    assert running.wait(5)  # "a" is being processed alone; the next three queue behind it
    big, cancelled, small = batcher.submit("bbbb"), batcher.submit("cc"), batcher.submit("d")
    assert cancelled.cancel()  # its client went away while it waited
    hold.set()
    assert (first.result(5), big.result(5), small.result(5)) == (1, 4, 1)
    assert batcher.stats.units == 1 + 4 + 1
    bad, good = batcher.submit("boom"), batcher.submit("x")
    with pytest.raises(ValueError, match="bad batch"):
        bad.result(5)
    with pytest.raises(ValueError):
        good.result(5)  # shared the failed pass
    assert batcher.submit("yy").result(5) == 2  # and the batcher goes on
    batcher.close()


def test_batcher_waits_at_most_max_wait_alone():
    batcher = DynamicBatcher(lambda items: items, max_batch=8, max_wait=0.05)
    start = time.perf_counter()
    assert batcher.submit(1).result(5) == 1
    assert 0.04 < time.perf_counter() - start < 1.0
    batcher.close()


def test_label_cache_keys_and_evicts(tiny_model):
    from actionclip.serve.labels import LabelCache

    cache = LabelCache(tiny_model, "tiny", maxsize=2)
    a = cache.get(["running", "walking"])
    assert cache.get(["running", "walking"], list(tiny_model.templates)) is a  # the model's own = explicit copy
    np.testing.assert_allclose(a.numpy(), tiny_model.encode_labels(["running", "walking"]).numpy(), atol=1e-6)
    assert cache.get(["walking", "running"]) is not a  # order is part of the key: rows follow it
    cache.get(["x", "y"], ["a clip of {}"])
    assert cache.to_dict() == {"entries": 2, "maxsize": 2, "hits": 1, "misses": 3}
    assert cache.get(["running", "walking"]) is not a  # evicted, computed again


@pytest.fixture
def features_model(tiny_checkpoint):
    """The tiny model, changed so that its video features are a VideoFeatures with visual tokens that
    its logits use (as X-CLIP's prompt generator does)."""
    import torch

    import actionclip
    from actionclip.model.scoring import VideoFeatures, cosine_logits

    model = actionclip.load(tiny_checkpoint, dtype="fp32")
    base = type(model)

    class WithTokens(base):
        def encode_video(self, pixels):
            emb = base.encode_video(self, pixels)
            return VideoFeatures(embedding=emb, tokens=torch.stack([emb.flip(-1), 2 * emb], dim=-2))

        def logits(self, video_features, label_features):
            conditioned = video_features.embedding + 0.5 * video_features.tokens.mean(dim=-2)
            return cosine_logits(conditioned, label_features, float(self.logit_scale))

    model.__class__ = WithTokens
    return model


def test_engine_batches_video_features_models(features_model, tmp_path):
    from actionclip._dev.videos import make_test_video
    from actionclip.serve.engine import Engine
    from actionclip.serve.settings import ServeSettings

    videos = [make_test_video(tmp_path / f"v{i}.mp4", seconds=1 + 0.5 * i, size=(48, 32), fps=10) for i in range(3)]
    labels = [["running", "walking"], ["a", "b", "c"], ["running", "walking"]]
    views = [(1, 1), (2, 1), (1, 3)]  # different V per request (6 views: the batch size), in one encoder pass
    engine = Engine(features_model, ServeSettings(batch_size=6, max_wait=2.0), model_name="with-tokens")

    async def all_at_once():
        return await asyncio.gather(*[engine.classify(v, v.name, lb, clips=c, crops=k)
                                      for v, lb, (c, k) in zip(videos, labels, views)])

    try:
        records = asyncio.run(all_at_once())
        assert engine.batcher.stats.largest == 3, "the three requests shared one pass"
    finally:
        engine.close()
    for record, video, lb, (c, k) in zip(records, videos, labels, views):
        expected = features_model.classify(video, lb, clips=c, crops=k)
        assert [r["label"] for r in record["results"]] == [label for label, _ in expected]
        np.testing.assert_allclose([r["prob"] for r in record["results"]], [p for _, p in expected], atol=1e-5)
