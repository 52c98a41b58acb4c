"""Where and in which precision the model runs: device, dtype, threads.

``device`` and ``dtype`` resolve here, once, with the reason for the choice: :func:`actionclip.load`
and every command (``--device auto|cpu|cuda``, ``--dtype auto|fp32|bf16|fp16``) follow the same rule.
``auto`` picks bf16 on a CPU only when it has native bf16 matrix units (AMX-BF16 or AVX512-BF16, read
from ``/proc/cpuinfo``): without them PyTorch emulates bf16 GEMMs and they run tens to hundreds of
times *slower* than fp32, so fp32 is the fast choice there. On CUDA ``auto`` picks bf16 where the card
supports it, else fp16. torch is imported inside functions.
"""

from __future__ import annotations

import argparse
import os
import platform
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from actionclip.choices import DEVICES
from actionclip.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch


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


_DTYPE_ALIASES = {"fp32": "fp32", "float32": "fp32", "float": "fp32", "bf16": "bf16", "bfloat16": "bf16",
                  "fp16": "fp16", "float16": "fp16", "half": "fp16"}


def torch_dtype(name: Any) -> torch.dtype:
    """``"fp32"|"bf16"|"fp16"`` (also ``float32``/``bfloat16``/``float16``/``half``, or a torch dtype)
    -> torch dtype."""
    import torch

    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if isinstance(name, torch.dtype):
        if name not in table.values():
            raise UsageError(f"dtype {name}: unsupported, expected one of fp32, bf16, fp16")
        return name
    try:
        return table[_DTYPE_ALIASES[str(name).lower().replace("torch.", "")]]
    except KeyError:
        raise UsageError(f"dtype {name!r}: unknown, expected one of fp32, bf16, fp16") from None


def dtype_name(dtype: Any) -> str:
    """torch dtype or name -> ``"fp32"|"bf16"|"fp16"``."""
    import torch

    names = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
    return names[torch_dtype(dtype)]


def resolve_device(device: str | None = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without one is an error."""
    import torch

    device = (device or "auto").lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"device {device!r}: CUDA is not available in this torch build/machine "
                             f"(torch {torch.__version__})")
        return device
    if device == "cpu":
        return device
    raise UsageError(f"device {device!r}: unknown, expected one of {', '.join(DEVICES)}")


def resolve(device: str | None = "auto", dtype: Any = "auto") -> RuntimeChoice:
    """Resolve a device and dtype (names, ``auto``/None, or a torch dtype) to a
    :class:`RuntimeChoice` with its reason."""
    import torch

    dev = resolve_device(device)
    if dtype is None or (isinstance(dtype, str) and dtype.lower() == "auto"):
        dtype = "auto"
    else:
        dtype = dtype_name(dtype)  # validates
    if dtype != "auto":
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
            raise UsageError(f"threads {threads}: must be at least 1")
        torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only allowed before the first parallel op; harmless afterwards
        pass
    return torch.get_num_threads()


def from_args(args: argparse.Namespace) -> RuntimeChoice:
    """Apply ``--threads`` and resolve ``--device``/``--dtype`` from parsed CLI arguments."""
    configure_threads(getattr(args, "threads", None))
    return resolve(getattr(args, "device", "auto"), getattr(args, "dtype", "auto"))


def describe_machine() -> str:
    """One line naming the CPU (and GPU when present) for benchmark tables."""
    import torch

    line = f"CPU: {cpu_info().describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        line += f"; GPU: {torch.cuda.get_device_name(0)}"
    return line
