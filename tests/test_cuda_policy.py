"""model/cuda.py: the graph cache's bookkeeping and the policy's choices, on CPU.

No GPU here: capturing is replaced by a recorder that runs the function (so outputs are real), and
what is checked is when a graph is made, reused, dropped or given up on, and that everything off
CUDA or under autograd stays eager. The GPU itself (capture, replay, parity with eager) is measured
by benchmarks/bench_cuda.py on a device (docs/speed.md, "To run on a GPU host").
"""

from __future__ import annotations

import warnings

import pytest
import torch

from actionclip.model import cuda


class Recorder:
    """A capture stand-in: counts captures, replays by calling the function."""

    def __init__(self, fail: bool = False):
        self.calls: list[tuple] = []
        self.fail = fail

    def __call__(self, fn, x, *, pool=None):
        self.calls.append((tuple(x.shape), x.dtype))
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        return lambda inp: fn(inp).clone()


def double(x: torch.Tensor) -> torch.Tensor:
    return x * 2


def test_one_graph_per_shape_and_dtype_reused_after():
    rec = Recorder()
    cache = cuda.GraphCache(double, capture=rec)
    x = torch.randn(1, 3)
    for _ in range(3):
        assert torch.equal(cache(x), x * 2)
    assert cache.captures == 1
    cache(torch.randn(2, 3))
    cache(x.double())
    assert rec.calls == [((1, 3), torch.float32), ((2, 3), torch.float32), ((1, 3), torch.float64)]
    cache(torch.randn(2, 3))
    assert cache.captures == 3 and len(cache) == 3


def test_least_recently_used_shape_is_dropped():
    rec = Recorder()
    cache = cuda.GraphCache(double, max_graphs=2, capture=rec)
    a, b, c = torch.randn(1, 2), torch.randn(2, 2), torch.randn(3, 2)
    cache(a), cache(b), cache(a), cache(c)  # b is the least recently used when c arrives
    assert len(cache) == 2
    cache(a)
    assert cache.captures == 3
    cache(b)  # dropped earlier: captured again
    assert cache.captures == 4


def test_weights_at_new_addresses_capture_again():
    weight = [torch.ones(3)]
    rec = Recorder()
    cache = cuda.GraphCache(lambda x: x * weight[0], capture=rec, weights_key=lambda: weight[0].data_ptr())
    x = torch.randn(2, 3)
    cache(x)
    with torch.no_grad():
        weight[0].mul_(2)  # in place: a graph reads the same memory, nothing to capture
    cache(x)
    assert cache.captures == 1
    weight[0] = weight[0].clone()  # new storage, as after model.to(...) or a reload
    assert torch.equal(cache(x), x * 2)
    assert cache.captures == 2


def test_moving_or_reloading_a_model_drops_its_graphs():
    from actionclip._dev.weights import random_clip, random_fusion
    from actionclip.model.actionclip import ActionCLIP

    clip = random_clip("tiny", seed=0)
    head = random_fusion("meanP", clip.config.embed_dim, 1, 4, position_rows=77, eps=1e-12, seed=0)
    model = ActionCLIP(clip, head, 4).eval()
    model.__dict__[cuda._RUNNERS_ATTR] = {"video": object()}
    model.to(torch.float64)
    assert cuda._RUNNERS_ATTR not in model.__dict__
    model.__dict__[cuda._RUNNERS_ATTR] = {"video": object()}
    model.load_state_dict(model.state_dict(), assign=True)
    assert cuda._RUNNERS_ATTR not in model.__dict__
    model.__dict__[cuda._RUNNERS_ATTR] = {"video": object()}
    cuda.reset(model)
    assert cuda._RUNNERS_ATTR not in model.__dict__


def test_failed_capture_turns_graphs_off_once_with_the_eager_result():
    rec = Recorder(fail=True)
    cache = cuda.GraphCache(double, capture=rec)
    x = torch.randn(2, 2)
    with pytest.warns(RuntimeWarning, match="CUDA graphs turned off"):
        assert torch.equal(cache(x), x * 2)
    assert not cache.usable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache(torch.randn(4, 2)).shape == (4, 2)
        assert torch.equal(cache(x), x * 2)
    assert len(rec.calls) == 1  # never tried again


def test_an_input_error_is_raised_and_graphs_stay_on():
    def picky(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != 3:
            raise ValueError("this model takes 3 channels")
        return x + 1

    rec = Recorder(fail=False)

    def capture(fn, x, *, pool=None):
        fn(x)  # warm-up inside the capture meets the bad input first
        return rec(fn, x, pool=pool)

    cache = cuda.GraphCache(picky, capture=capture)
    with pytest.raises(ValueError, match="3 channels"):
        cache(torch.randn(1, 4))
    assert cache.usable
    assert torch.equal(cache(torch.zeros(1, 3)), torch.ones(1, 3))
    assert cache.captures == 1


def test_runner_picks_graphs_for_small_batches_compile_or_eager_for_large(monkeypatch):
    compiled: list[str] = []

    def fake_compile(fn, mode, dynamic):
        compiled.append(mode)
        return lambda x: fn(x) + 0

    monkeypatch.setattr(torch, "compile", fake_compile)
    rec = Recorder()
    eager = cuda._Runner(double, cuda.CudaPolicy(graphs_max_batch=2), lambda: None)
    eager.graphs.capture = rec
    eager(torch.randn(1, 3)), eager(torch.randn(2, 3)), eager(torch.randn(8, 3))
    assert eager.graphs.captures == 2 and not compiled  # batch 8 ran eagerly

    comp = cuda._Runner(double, cuda.CudaPolicy(graphs_max_batch=2, compile=True, compile_mode="default"),
                      lambda: None)
    comp.graphs.capture = rec
    comp(torch.randn(8, 3)), comp(torch.randn(16, 3))
    assert compiled == ["default"]  # compiled once, reused for every large batch

    monkeypatch.setenv("ACTIONCLIP_CUDA_GRAPHS", "0")
    off = cuda._Runner(double, cuda.CudaPolicy(), lambda: None)
    off.graphs.capture = rec
    off(torch.randn(1, 3))
    assert off.graphs.captures == 0


def test_run_stays_eager_off_cuda_and_keeps_no_state():
    model = torch.nn.Linear(3, 3)
    calls = []
    out = cuda.run(model, "video", lambda x: calls.append(x) or x, torch.randn(1, 3))
    assert len(calls) == 1 and out.shape == (1, 3)
    assert cuda._RUNNERS_ATTR not in model.__dict__
    assert not cuda.tracing()


def test_configure_sets_the_policy_and_drops_what_was_built(monkeypatch):
    model = torch.nn.Linear(2, 2)
    assert cuda.policy_of(model) == cuda.CudaPolicy()
    monkeypatch.setenv("ACTIONCLIP_CUDA_COMPILE", "1")
    assert cuda.policy_of(model).compile
    model.__dict__[cuda._RUNNERS_ATTR] = {"video": object()}
    policy = cuda.configure(model, graphs_max_batch=1, compile=False)
    assert policy.graphs_max_batch == 1 and not policy.compile and cuda.policy_of(model) is policy
    assert cuda._RUNNERS_ATTR not in model.__dict__
    with pytest.raises(TypeError, match="graph_max"):
        cuda.configure(model, graph_max=3)


def test_model_encode_video_is_unchanged_on_cpu():
    from actionclip._dev.weights import random_clip, random_fusion
    from actionclip.model.actionclip import ActionCLIP

    clip = random_clip("tiny", seed=0)
    head = random_fusion("Transf", clip.config.embed_dim, 1, 4, position_rows=77, eps=1e-12, seed=0)
    model = ActionCLIP(clip, head, 4).eval()
    pixels = torch.randn(2, 4, 3, model.input_resolution, model.input_resolution)
    with torch.no_grad():
        ours = model.encode_video(pixels)
        direct = model.fuse(model.encode_image(pixels.flatten(0, 1)).view(2, 4, -1))
    assert torch.equal(ours, direct)
    assert cuda._RUNNERS_ATTR not in model.__dict__


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_graph_replay_matches_eager_on_cuda(dtype):  # pragma: no cover - GPU only
    from actionclip._dev.weights import random_clip, random_fusion
    from actionclip.model.actionclip import ActionCLIP

    clip = random_clip("tiny", seed=0)
    head = random_fusion("Transf", clip.config.embed_dim, 1, 4, position_rows=77, eps=1e-12, seed=0)
    model = ActionCLIP(clip, head, 4).eval().to(device="cuda", dtype=dtype)
    r = model.input_resolution
    with torch.no_grad():
        for batch in (1, 3):
            for _ in range(3):  # capture, then replays with fresh inputs
                x = torch.randn(batch, 4, 3, r, r, device="cuda", dtype=dtype)
                graphed = model.encode_video(x)
                eager = model._encode_video(x)  # the function the graph was captured from
                assert torch.allclose(graphed.float(), eager.float(), atol=1e-2, rtol=1e-2)
        runner = model.__dict__[cuda._RUNNERS_ATTR]["video"]
        assert runner.graphs.usable and runner.graphs.captures == 2  # one per batch size
