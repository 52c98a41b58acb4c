"""Where and in which precision the model runs: device, dtype, threads, and the GPU fast path.

``--device auto|cpu|cuda`` and ``--dtype auto|fp32|bf16|fp16`` resolve here, once, with the reason
for the choice, so every command reports the same thing.  ``auto`` picks bf16 on a CPU only when it
has native bf16 matrix units (AMX-BF16 or AVX512-BF16, read from ``/proc/cpuinfo``): without them
PyTorch emulates bf16 GEMMs and they run tens to hundreds of times *slower* than fp32, so fp32 is the
fast choice there.  On CUDA ``auto`` picks bf16 where the card supports it, else fp16.

The GPU helpers (:func:`to_device`, :func:`maybe_compile`, :class:`CudaGraphEncoder`) are used by the
benchmark and by batch inference; they are no-ops or clear errors on machines without CUDA.

torch is imported inside functions: command modules call :func:`add_runtime_arguments` at parser
build time, and ``actionclip --help`` must not pay for importing torch.
"""

from __future__ import annotations

import argparse
import os
import platform
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable

from actionclip.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "fp32", "bf16", "fp16")

# cpuinfo flags that give native bf16 / fp16 matrix arithmetic, best first.
_BF16_FLAGS = (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"))
_FP16_FLAGS = (("amx_fp16", "AMX-FP16"), ("avx512_fp16", "AVX512-FP16"))
_VECTOR_FLAGS = (("avx512f", "AVX512"), ("avx2", "AVX2"), ("sse4_2", "SSE4.2"))


@dataclass(frozen=True)
class CpuInfo:
    """What this CPU offers for inference, read from ``/proc/cpuinfo`` (empty elsewhere)."""

    model: str
    cores: int
    flags: frozenset[str] = field(default_factory=frozenset)

    @property
    def bf16_unit(self) -> str | None:
        """Name of the native bf16 matrix unit (``"AMX-BF16"``, ``"AVX512-BF16"``) or None."""
        return next((name for flag, name in _BF16_FLAGS if flag in self.flags), None)

    @property
    def fp16_unit(self) -> str | None:
        return next((name for flag, name in _FP16_FLAGS if flag in self.flags), None)

    @property
    def vector_isa(self) -> str:
        return next((name for flag, name in _VECTOR_FLAGS if flag in self.flags), "baseline")

    def describe(self) -> str:
        """One line, e.g. ``AMD EPYC, 2 cores, AVX2, bf16: none (emulated, slow)``."""
        bf16 = self.bf16_unit or "none (emulated, slow)"
        return f"{self.model}, {self.cores} cores, {self.vector_isa}, bf16: {bf16}"


def parse_cpuinfo(text: str) -> CpuInfo:
    """Parse the text of ``/proc/cpuinfo`` (x86 ``flags`` lines, ARM ``Features`` lines)."""
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features"):
            flags.update(value.split())
    return CpuInfo(model=model or platform.processor() or "unknown CPU", cores=os.cpu_count() or 1,
                   flags=frozenset(flags))


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's :class:`CpuInfo` (cached)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            return parse_cpuinfo(fh.read())
    except OSError:  # macOS, Windows: no flags, so auto never picks bf16 on CPU
        return parse_cpuinfo("")


@dataclass(frozen=True)
class RuntimeChoice:
    """A resolved device + dtype and why they were chosen (printed by ``--verbose`` and bench)."""

    device: str  # "cpu" or "cuda" / "cuda:N"
    dtype: str  # "fp32", "bf16" or "fp16"
    reason: str

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch_dtype(self.dtype)

    def describe(self) -> str:
        return f"{self.device} {self.dtype} ({self.reason})"


def torch_dtype(name: str) -> torch.dtype:
    """``"fp32"|"bf16"|"fp16"`` (also ``float32``/``bfloat16``/``float16``) -> torch dtype."""
    import torch

    table = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
             "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
    try:
        return table[str(name).replace("torch.", "")]
    except KeyError:
        raise UsageError(f"dtype {name!r}: unknown, expected one of fp32, bf16, fp16") from None


def dtype_name(dtype: Any) -> str:
    """torch dtype or name -> ``"fp32"|"bf16"|"fp16"``."""
    import torch

    names = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
    return names[torch_dtype(dtype) if isinstance(dtype, str) else dtype]


def resolve_device(device: str | None = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without one is an error."""
    import torch

    device = (device or "auto").lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: CUDA is not available in this torch build/machine "
                             f"(torch {torch.__version__})")
        return device
    if device == "cpu":
        return device
    raise UsageError(f"--device {device}: unknown, expected one of {', '.join(DEVICES)}")


def resolve(device: str | None = "auto", dtype: str | None = "auto") -> RuntimeChoice:
    """Resolve ``--device``/``--dtype`` to a :class:`RuntimeChoice` with its reason."""
    import torch

    dev = resolve_device(device)
    dtype = (dtype or "auto").lower()
    if dtype != "auto":
        torch_dtype(dtype)  # validates
        dtype = dtype_name(dtype)
        if dev == "cpu" and dtype == "bf16" and not cpu_info().bf16_unit:
            return RuntimeChoice(dev, dtype, "requested; this CPU has no native bf16, expect it to be slow")
        if dev == "cpu" and dtype == "fp16" and not cpu_info().fp16_unit:
            return RuntimeChoice(dev, dtype, "requested; this CPU has no native fp16, expect it to be slow")
        return RuntimeChoice(dev, dtype, "requested")
    if dev.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(dev))
        if torch.cuda.is_bf16_supported():
            return RuntimeChoice(dev, "bf16", f"{name} supports bf16")
        return RuntimeChoice(dev, "fp16", f"{name} has no bf16")
    unit = cpu_info().bf16_unit
    if unit:
        return RuntimeChoice(dev, "bf16", f"CPU has {unit}")
    return RuntimeChoice(dev, "fp32", f"CPU has no AMX-BF16/AVX512-BF16 ({cpu_info().vector_isa} only)")


def configure_threads(threads: int | None = None) -> int:
    """Set intra-op threads (default: leave torch's choice, one per physical core); return the count.

    Inter-op parallelism is pinned to 1 thread: the model is a chain of large ops, and extra inter-op
    threads only compete with the intra-op pool (and with decode workers) for the same cores.
    """
    import torch

    if threads is not None:
        if threads < 1:
            raise UsageError(f"--threads {threads}: must be at least 1")
        torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only allowed before the first parallel op; harmless afterwards
        pass
    return torch.get_num_threads()


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--device``, ``--dtype``, ``--threads`` to a command's parser (no torch import)."""
    group = parser.add_argument_group("runtime")
    group.add_argument("--device", default="auto", choices=DEVICES,
                       help="where to run: auto picks cuda when available (default: auto)")
    group.add_argument("--dtype", default="auto", choices=DTYPES,
                       help="precision: auto picks bf16 on CUDA and on CPUs with AMX/AVX512-BF16, "
                            "else fp32 (default: auto)")
    group.add_argument("--threads", type=int, default=None,
                       help="CPU threads for the model (default: one per core)")


def from_args(args: argparse.Namespace) -> RuntimeChoice:
    """Apply ``--threads`` and resolve ``--device``/``--dtype`` from parsed arguments."""
    configure_threads(getattr(args, "threads", None))
    return resolve(getattr(args, "device", "auto"), getattr(args, "dtype", "auto"))


def describe_machine() -> str:
    """One line naming the CPU (and GPU when present) for benchmark tables."""
    import torch

    line = f"CPU: {cpu_info().describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        line += f"; GPU: {torch.cuda.get_device_name(0)}"
    return line


# --- GPU fast path -----------------------------------------------------------------------------


def to_device(tensor: torch.Tensor, device: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Move a CPU batch to ``device``; on CUDA through pinned memory so the copy is asynchronous.

    The dtype cast happens on the GPU after the copy when it narrows (fp32 -> bf16 on the GPU is
    free, and the host stays out of the way), and before it when it widens (uint8 frames are cast on
    the GPU, which is the point: a quarter of the bytes cross PCIe).
    """
    if not str(device).startswith("cuda"):
        return tensor.to(device=device, dtype=dtype) if dtype is not None else tensor.to(device)
    if tensor.device.type == "cpu" and not tensor.is_pinned():
        tensor = tensor.pin_memory()
    out = tensor.to(device, non_blocking=True)
    return out.to(dtype) if dtype is not None else out


def maybe_compile(fn: Callable[..., Any], enabled: bool, mode: str = "max-autotune-no-cudagraphs") -> Callable:
    """``torch.compile(fn)`` when enabled (and supported); else ``fn`` unchanged.

    Compilation costs tens of seconds once, so only long runs (bench, eval, batch classify on a GPU)
    should ask for it.
    """
    if not enabled:
        return fn
    import torch

    if not hasattr(torch, "compile"):
        raise UsageError(f"--compile: torch {torch.__version__} has no torch.compile")
    return torch.compile(fn, mode=mode, dynamic=False)


class CudaGraphEncoder:
    """Replay ``fn`` on a fixed-shape input as one CUDA graph (removes per-kernel launch overhead).

    ``fn`` is any pure tensor function (``model.encode_video``); the first call with a shape captures
    the graph after a warm-up on a side stream, later calls copy the input into the static buffer and
    replay.  A batch of another shape gets its own graph (keep the set of shapes small: pad the last
    batch to the common size).  Outputs are clones, so the caller may keep them across calls.
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], warmup: int = 3):
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--cuda-graphs: CUDA is not available on this machine")
        self.fn = fn
        self.warmup = warmup
        self._graphs: dict[tuple, tuple[Any, torch.Tensor, torch.Tensor]] = {}

    def _capture(self, x: torch.Tensor) -> tuple[Any, torch.Tensor, torch.Tensor]:
        import torch

        static_in = x.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(self.warmup):
                self.fn(static_in)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.inference_mode():
            static_out = self.fn(static_in)
        return graph, static_in, static_out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, x.device)
        if key not in self._graphs:
            self._graphs[key] = self._capture(x)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(x, non_blocking=True)
        graph.replay()
        return static_out.clone()


def synchronize(device: str) -> None:
    """Wait for queued GPU work (timings are meaningless without it); no-op on CPU."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()
