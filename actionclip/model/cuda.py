"""CUDA inference: replay small batches as CUDA graphs, compile large ones when a run is long.

Why this exists: on a GPU one clip is launch-bound (B/32-8f is ~400 small kernels; eager fp16 took
6.6 ms on an H200 where Hugging Face took 4.1 ms), and a large batch is bound by the unfused work
around the matmuls (LayerNorm, QuickGELU, bias adds), where ``torch.compile`` fuses. Both only pay on
CUDA and only in inference, so everything here is off, and costs one attribute check, elsewhere.

:func:`run` is what a model's encoder calls (``ActionCLIP.encode_video``, X-CLIP's video tower):

* **CUDA graphs** for batches of at most ``graphs_max_batch`` clips (one-clip latency: ``classify``,
  ``watch``, ``serve``): the first call with an input shape and dtype warms up on a side stream,
  captures the encoder once and keeps the graph (at most ``max_graphs`` shapes, least recently used
  dropped, all sharing one memory pool); later calls copy the input into the graph's static buffer,
  replay, and return clones. A graph reads the weights where they lie, so in-place edits (an
  optimiser step, ``load_state_dict`` without ``assign``) are seen; weights that move to new storage
  are not: :class:`~actionclip.model.module.VideoModule` drops the graphs when the model is moved
  (``.to()``, ``.half()``...) or loads with ``assign=True``, and the key holds the first weight's
  address as a cheap second check (walking every parameter costs ~0.5 ms a call, a sixth of a
  one-clip encode). After replacing single parameters by assignment, call :func:`reset`.
* **torch.compile** (``compile=True``; mode ``max-autotune-no-cudagraphs`` by default) for larger
  batches: it costs tens of seconds once per shape, so it is opt-in, for long runs (``eval``,
  ``index``, a server that stays up, ``actionclip bench --compile``).
* **Eager** otherwise, and always when autograd is on (training), when a tracer or the compiler is
  recording (ONNX export, TorchScript, compiling the caller) or a caller captures its own CUDA graph,
  when the input is not on a CUDA device,
  or when ``ACTIONCLIP_CUDA_GRAPHS=0`` / a failed capture turned graphs off (one warning, then eager).

The policy lives on the model (:func:`configure`), so a command can opt a loaded model into
compilation without any other code knowing.
"""

from __future__ import annotations

import collections
import os
import threading
import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import Any

import torch

from actionclip.model.fastpath import tracing

__all__ = ["CudaPolicy", "configure", "reset", "policy_of", "run", "GraphCache", "tracing"]

_POLICY_ATTR = "_actionclip_cuda_policy"
_RUNNERS_ATTR = "_actionclip_cuda_runners"


@dataclass(frozen=True)
class CudaPolicy:
    """How a model's encoders run on CUDA in inference (see the module notes)."""

    graphs_max_batch: int = 8  # batches of at most this many replay a CUDA graph (0: never)
    max_graphs: int = 8  # distinct input shapes kept captured
    compile: bool = False  # torch.compile for batches above graphs_max_batch
    compile_mode: str = "max-autotune-no-cudagraphs"


def configure(model: torch.nn.Module, **changes: Any) -> CudaPolicy:
    """Set ``model``'s CUDA policy fields (``graphs_max_batch``, ``max_graphs``, ``compile``,
    ``compile_mode``); returns the new policy. Already captured graphs and compiled functions are
    dropped, so the next call follows the new policy."""
    unknown = set(changes) - set(CudaPolicy.__dataclass_fields__)
    if unknown:
        raise TypeError(f"configure: unknown policy field(s) {', '.join(sorted(unknown))}")
    policy = replace(policy_of(model), **changes)
    model.__dict__[_POLICY_ATTR] = policy
    model.__dict__.pop(_RUNNERS_ATTR, None)
    return policy


def reset(model: torch.nn.Module) -> None:
    """Drop the model's captured graphs and compiled functions (the next call builds them again)."""
    model.__dict__.pop(_RUNNERS_ATTR, None)


def policy_of(model: torch.nn.Module) -> CudaPolicy:
    """The model's policy (the defaults unless :func:`configure` changed them); ``compile`` is also
    turned on by ``ACTIONCLIP_CUDA_COMPILE=1``."""
    policy = model.__dict__.get(_POLICY_ATTR)
    if policy is None:
        policy = CudaPolicy(compile=os.environ.get("ACTIONCLIP_CUDA_COMPILE", "0") == "1")
    return policy


def _graphs_enabled() -> bool:
    return os.environ.get("ACTIONCLIP_CUDA_GRAPHS", "1") != "0"


def run(model: torch.nn.Module, name: str, fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Any:
    """``fn(x)``, on CUDA in inference through the model's graph cache or compiled function.

    ``name`` tells apart the encoders of one model ("video", "text"); ``fn`` must be a pure function
    of ``x`` and the model's weights, returning a tensor or a tuple of tensors."""
    if not isinstance(x, torch.Tensor) or x.device.type != "cuda" or torch.is_grad_enabled() or tracing():
        return fn(x)
    if torch.cuda.is_current_stream_capturing():  # a caller's own graph (bench's CudaGraphEncoder) records us
        return fn(x)
    runners = model.__dict__.setdefault(_RUNNERS_ATTR, {})
    runner = runners.get(name)
    if runner is None:
        runner = runners[name] = _Runner(fn, policy_of(model), lambda: _first_weight(model))
    return runner(x)


class _Runner:
    """One encoder's graphs and compiled function (built lazily, per model and encoder)."""

    def __init__(self, fn: Callable[[torch.Tensor], Any], policy: CudaPolicy, weights_key: Callable[[], Hashable]):
        self.fn = fn
        self.policy = policy
        self.graphs = GraphCache(fn, max_graphs=policy.max_graphs, weights_key=weights_key)
        self._compiled: Callable[..., Any] | None = None

    def __call__(self, x: torch.Tensor) -> Any:
        if x.shape[0] <= self.policy.graphs_max_batch and _graphs_enabled() and self.graphs.usable:
            return self.graphs(x)
        if self.policy.compile:
            if self._compiled is None:
                self._compiled = torch.compile(self.fn, mode=self.policy.compile_mode, dynamic=False)
            return self._compiled(x)
        return self.fn(x)


def _first_weight(model: torch.nn.Module) -> Hashable:
    first = next(model.parameters(), None)
    return None if first is None else first.data_ptr()


class GraphCache:
    """CUDA graphs of ``fn``, one per input (shape, dtype, device) and ``weights_key()`` (where the
    weights lie), least recently used dropped beyond ``max_graphs``.

    ``capture`` is how one graph is made (default: :func:`capture_graph`); it returns a replay
    function ``x -> outputs`` (already cloned). A capture that raises turns the cache off for good
    (``usable`` False, one warning) and that call, like every later one, runs ``fn`` eagerly; unless
    ``fn`` fails eagerly too, which is the input's fault: that error is raised and graphs stay on."""

    def __init__(self, fn: Callable[[torch.Tensor], Any], *, max_graphs: int = 8,
                 weights_key: Callable[[], Hashable] = lambda: None,
                 capture: Callable[..., Callable[[torch.Tensor], Any]] | None = None):
        self.fn = fn
        self.max_graphs = max(1, int(max_graphs))
        self.weights_key = weights_key
        self.capture = capture or capture_graph
        self.usable = True
        self.captures = 0  # graphs made so far (bookkeeping the tests and the benchmark read)
        self._graphs: collections.OrderedDict[tuple, Callable[[torch.Tensor], Any]] = collections.OrderedDict()
        self._pool: Any = None
        self._lock = threading.Lock()  # one capture or replay at a time (a server's threads share a model)

    def key(self, x: torch.Tensor) -> tuple:
        return (tuple(x.shape), x.dtype, str(x.device), self.weights_key())

    def __len__(self) -> int:
        return len(self._graphs)

    def __call__(self, x: torch.Tensor) -> Any:
        if not self.usable:
            return self.fn(x)
        with self._lock:
            key = self.key(x)
            replay = self._graphs.get(key)
            if replay is None:
                try:
                    if self._pool is None and x.device.type == "cuda":
                        self._pool = torch.cuda.graph_pool_handle()
                    replay = self.capture(self.fn, x, pool=self._pool)
                except Exception as exc:  # noqa: BLE001 - sorted out below
                    # The same error eagerly is the input's fault (wrong frame count...): raise it and
                    # keep graphs for good inputs. Only a failure of the capture itself turns them off.
                    out = self.fn(x)
                    self.usable = False
                    self._graphs.clear()
                    warnings.warn(f"CUDA graphs turned off for this model: capture failed ({exc})",
                                  RuntimeWarning, stacklevel=3)
                    return out
                self.captures += 1
                self._graphs[key] = replay
                while len(self._graphs) > self.max_graphs:
                    self._graphs.popitem(last=False)
            else:
                self._graphs.move_to_end(key)
            return replay(x)


def _clone(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.clone()
    if isinstance(out, tuple):
        return tuple(_clone(o) for o in out)
    raise TypeError(f"CUDA graphs: the encoder must return tensors, got {type(out).__name__}")


def capture_graph(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, *, pool: Any = None,
                  warmup: int = 2) -> Callable[[torch.Tensor], Any]:
    """Capture ``fn`` on an input like ``x`` (after ``warmup`` calls on a side stream, which also
    settles cuBLAS/SDPA workspaces); returns ``replay(x) -> cloned outputs``."""
    static_in = x.clone()
    stream = torch.cuda.Stream(device=x.device)
    stream.wait_stream(torch.cuda.current_stream(x.device))
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn(static_in)
    torch.cuda.current_stream(x.device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        static_out = fn(static_in)

    def replay(inp: torch.Tensor) -> Any:
        static_in.copy_(inp, non_blocking=True)
        graph.replay()
        return _clone(static_out)

    return replay
