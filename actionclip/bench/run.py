"""Speed benchmark: actionclip vs Hugging Face ``transformers`` CLIP vs the machine's FLOP bound.

One run measures, side by side and on the same weights:

- **clip latency** - encode one clip (1 video x T frames) into a video embedding;
- **batch throughput** - videos/s on a batch of B clips;
- **text throughput** - prompts/s for K templates x L labels (16 x 100 by default), tokenizing
  included on every side (ours with our tokenizer, HF with its ``CLIPTokenizer``);
- **tokenize** - prompts/s of tokenizing alone, on the same 16 x L prompts: our fast tokenizer, our
  pure-Python one and HF's (:mod:`actionclip.bench.tokenizing`);
- **classify e2e** - one real video file: decode + preprocess + encode + score (label embeddings
  computed once beforehand, the many-videos case);
- **peak memory** of each measurement (CPU: resident-set growth sampled every 2 ms; CUDA: the
  allocator's peak);

for ``actionclip`` (torch), ``onnxruntime`` (the exported graphs, fp32 and optionally int8) and
``hf-transformers`` (``CLIPModel`` holding the same weights; a video is its per-frame image
features + projection, averaged - the meanP reference, which costs the same FLOPs bar the tiny
fusion head), in fp32 and bf16 (fp16 too on CUDA), on CPU and CUDA when present.

The **FLOP bound** is measured in the same run by a square matmul in each dtype; each row's FLOPs are
counted by ``torch.utils.flop_counter`` on the real model (matmuls, convolutions, attention), so
"% bound" = (FLOPs / matmul rate) / time: how close a row is to the best this machine's GEMM does.

Figures are medians of several timed runs after a warm-up. A dtype the CPU can only emulate (bf16
without AMX/AVX512-BF16 runs at a few GFLOP/s) is skipped with the predicted time instead of
stalling the run for minutes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actionclip import runtime
from actionclip.bench import gpu
from actionclip.bench.tokenizing import hf_clip_tokenizer, hf_token_ids, tokenizer_impls

__all__ = ["BenchConfig", "Row", "run_bench", "format_table", "matmul_gflops", "count_flops",
           "build_models", "hf_from_clip", "time_call", "PeakMemory"]


@dataclass
class BenchConfig:
    model: str = "B/32"  # a size from actionclip._dev.weights.SIZES (random weights) or a checkpoint
    frames: int = 8
    fusion: str = "Transf"
    devices: Sequence[str] = ("auto",)  # "auto" = cpu, plus cuda when present
    dtypes: Sequence[str] = ("fp32", "bf16")
    batch: int | None = None  # default: 4 on CPU, 64 on CUDA
    labels: int = 100
    text_labels: int | None = None  # labels (x 16 templates) actually timed; default all on CUDA, 8 on CPU
    repeats: int = 5
    budget_s: float = 20.0  # per row: stop repeating once spent (at least 3 runs when affordable)
    max_predicted_s: float = 30.0  # skip a row predicted (FLOPs / matmul rate) to take longer per call
    hf: bool = True
    onnx: bool = True
    int8: bool = False
    compile: bool = False
    cuda_graphs: bool = False
    clip: str | None = None  # video for the e2e row; default a shared clip or a generated one
    threads: int | None = None


@dataclass
class Row:
    task: str
    impl: str
    device: str
    dtype: str
    seconds: float | None  # median per call
    per_call: float  # units per call (videos or prompts)
    unit: str
    flops: float | None = None  # per call
    peak_mb: float | None = None
    samples: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def rate(self) -> float | None:
        return self.per_call / self.seconds if self.seconds else None


# --- measurement primitives -----------------------------------------------------------------------


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


class PeakMemory:
    """Peak memory growth inside the block: CUDA allocator peak, or CPU RSS sampled every 2 ms."""

    def __init__(self, device: str):
        self.device = device
        self.peak_mb: float | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        self._base = self._peak = _rss_bytes()
        self._stop = threading.Event()

        def poll() -> None:
            while not self._stop.wait(0.002):
                self._peak = max(self._peak, _rss_bytes())

        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.peak_mb = (torch.cuda.max_memory_allocated() - self._base) / 2**20
            return
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, _rss_bytes())
        self.peak_mb = (self._peak - self._base) / 2**20


def time_call(fn: Callable[[], Any], device: str, repeats: int, budget_s: float, warmup: int = 1) -> list[float]:
    """Wall times of ``fn()`` after ``warmup`` calls: ``repeats`` runs, fewer when ``budget_s`` is
    spent (at least one)."""
    for _ in range(warmup):
        fn()
        gpu.synchronize(device)
    times: list[float] = []
    spent = 0.0
    while len(times) < repeats and (not times or spent + statistics.median(times) <= budget_s):
        start = time.perf_counter()
        fn()
        gpu.synchronize(device)
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return times


def matmul_gflops(device: str, dtype: torch.dtype, max_n: int | None = None, budget_s: float = 3.0) -> float:
    """This machine's GEMM rate in GFLOP/s for ``dtype``: square matmuls, growing until one takes
    ~0.25 s (large enough to reach the GEMM's peak; emulated dtypes stop at a small size), best of
    several runs."""
    max_n = max_n or (16384 if device.startswith("cuda") else 4096)
    n, best = 128, 0.0
    started = time.perf_counter()
    while True:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        times = time_call(functools.partial(torch.matmul, a, b), device, repeats=5, budget_s=max(0.2, budget_s / 4))
        best = max(best, 2 * n**3 / min(times) / 1e9)
        if min(times) > 0.25 or n >= max_n or time.perf_counter() - started > budget_s:
            return best
        n *= 2


def count_flops(fn: Callable[[], Any]) -> float:
    """FLOPs of one call (matmul, conv, attention), counted by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        fn()
    return float(counter.get_total_flops())


# --- models ---------------------------------------------------------------------------------------


def build_models(spec: str, frames: int = 8, fusion: str = "Transf") -> Any:
    """``spec`` a size in :data:`actionclip._dev.weights.SIZES` (random weights, seed 0) or a checkpoint."""
    from actionclip._dev.weights import SIZES, random_clip, random_fusion
    from actionclip.model.actionclip import ActionCLIP

    if spec in SIZES:
        clip = random_clip(spec, seed=0)
        cfg = clip.config
        head = random_fusion(fusion, cfg.embed_dim, max(1, cfg.text_width // 64), frames, position_rows=77,
                             eps=1e-12, seed=0)
        return ActionCLIP(clip, head, frames, name=f"random {spec}-{frames}f {fusion}").eval()
    import actionclip

    return actionclip.load(spec, frames=frames)


def hf_from_clip(clip: Any) -> Any:
    """A ``transformers.CLIPModel`` holding exactly ``clip``'s weights (OpenAI -> HF names: the
    inverse of :func:`actionclip.loading.checkpoints.hf_to_openai`)."""
    from transformers import CLIPConfig as HFConfig
    from transformers import CLIPModel

    from actionclip._dev.weights import hf_config
    from actionclip.model.hf_clip import _HF_BLOCK, _HF_TOP

    cfg = clip.config
    hf_cfg = hf_config(cfg)
    for tower in ("text_config", "vision_config"):
        hf_cfg[tower].update(hidden_act="gelu" if cfg.activation == "gelu" else "quick_gelu",
                             layer_norm_eps=cfg.layer_norm_eps)
    sd = {k: v.detach().float() for k, v in clip.openai_state_dict().items()}
    out = {hf: sd[ours] for hf, ours in _HF_TOP.items()}
    out["visual_projection.weight"] = sd["visual.proj"].t().contiguous()
    out["text_projection.weight"] = sd["text_projection"].t().contiguous()
    for tower, prefix, layers in (("vision_model", "visual.transformer", cfg.vision_layers),
                                  ("text_model", "transformer", cfg.text_layers)):
        for i in range(layers):
            src, dst = f"{prefix}.resblocks.{i}.", f"{tower}.encoder.layers.{i}."
            for hf, ours in _HF_BLOCK.items():
                out[dst + hf] = sd[src + ours]
            for part, (w, b) in zip("qkv", zip(sd[src + "attn.in_proj_weight"].chunk(3),
                                                sd[src + "attn.in_proj_bias"].chunk(3))):
                out[f"{dst}self_attn.{part}_proj.weight"] = w
                out[f"{dst}self_attn.{part}_proj.bias"] = b
    model = CLIPModel(HFConfig(**hf_cfg))  # not on "meta": HF keeps non-persistent buffers (position ids)
    missing, unexpected = model.load_state_dict(out, strict=False)
    if unexpected or any("position_ids" not in k for k in missing):
        raise RuntimeError(f"HF CLIP conversion: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.eval()


def _hf_video(hf: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    def encode(pixels: torch.Tensor) -> torch.Tensor:
        b, t = pixels.shape[:2]
        pooled = hf.vision_model(pixel_values=pixels.flatten(0, 1)).pooler_output
        return hf.visual_projection(pooled).view(b, t, -1).mean(1)

    return encode


def _hf_text(hf: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    def encode(tokens: torch.Tensor) -> torch.Tensor:
        # HF's own usage pads to the longest prompt (padding=True); do the same, without a mask,
        # which the causal mask makes exact.
        tokens = tokens[:, : int(tokens.argmax(-1).max()) + 1]
        return hf.text_projection(hf.text_model(input_ids=tokens).pooler_output)

    return encode


# --- inputs ---------------------------------------------------------------------------------------


def default_labels(count: int) -> list[str]:
    """Kinetics-400 class names from the shared data when present, else generated phrases."""
    from actionclip.text.labels import load_labels

    root = Path(os.environ.get("ACTIONCLIP_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    for candidate in sorted((root / "classes").glob("*400*")) if (root / "classes").is_dir() else []:
        with contextlib.suppress(Exception):
            labels = load_labels(candidate)
            if len(labels) >= count:
                return labels[:count]
    verbs = ["riding", "playing", "throwing", "catching", "cutting", "washing", "climbing", "kicking",
             "folding", "painting"]
    things = ["a bike", "the guitar", "a ball", "wood", "dishes", "a ladder", "a drum", "paper", "a horse",
              "a kite"]
    return [f"{verbs[i % 10]} {things[(i // 10) % 10]} {'' if i < 100 else i}".strip() for i in range(count)]


def default_clip(tmp: Path) -> Path:
    """A real clip from the shared data when present, else a generated 5 s 320x240 video."""
    root = Path(os.environ.get("ACTIONCLIP_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    clips = sorted((root / "clips").rglob("*.mp4")) if (root / "clips").is_dir() else []
    if clips:
        return clips[0]
    from actionclip._dev.videos import make_test_video

    return make_test_video(tmp / "bench.mp4", seconds=5, size=(320, 240), fps=25)


# --- the benchmark --------------------------------------------------------------------------------


def _devices(requested: Sequence[str]) -> list[str]:
    out: list[str] = []
    for d in requested:
        if d == "auto":
            out += ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        else:
            out.append(runtime.resolve_device(d))
    return list(dict.fromkeys(out))


def run_bench(cfg: BenchConfig, log: Callable[[str], None] = print) -> tuple[list[Row], dict[str, Any]]:
    """Run every measurement ``cfg`` asks for; return the rows and a header (machine, date...)."""
    # HF's tokenizer would batch-encode on every core (Rust threads) where ours uses one: the
    # tokenize and text rows run both on one, unless the caller set TOKENIZERS_PARALLELISM.
    with _env_default("TOKENIZERS_PARALLELISM", "false"):
        return _run_bench(cfg, log)


@contextlib.contextmanager
def _env_default(name: str, value: str) -> Iterator[None]:
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _run_bench(cfg: BenchConfig, log: Callable[[str], None]) -> tuple[list[Row], dict[str, Any]]:
    runtime.configure_threads(cfg.threads)
    rows: list[Row] = []
    header = {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": runtime.describe_machine(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "model": cfg.model,
        "frames": cfg.frames,
        "bounds": {},
    }
    log(f"# {header['machine']}")
    model = build_models(cfg.model, cfg.frames, cfg.fusion)
    hf = None
    if cfg.hf:
        try:
            hf = hf_from_clip(model.clip)
        except ImportError:
            log("# transformers not installed: no HF reference")
    r, t = model.input_resolution, model.num_frames
    labels = default_labels(cfg.labels)
    from actionclip.text.templates import resolve_templates

    templates = resolve_templates()
    prompts = [tpl.format(label) for tpl in templates for label in labels]
    gen = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="actionclip-bench-") as tmp:
        video_path = Path(cfg.clip) if cfg.clip else default_clip(Path(tmp))
        header["clip"] = str(video_path)
        # FLOPs per unit, counted once in fp32 on CPU
        one = torch.randn(1, t, 3, r, r, generator=gen)
        flops_clip = count_flops(functools.partial(model.encode_video, one))
        # text FLOPs: what encode_labels needs (each batch stops at its longest prompt), per prompt
        sample = _text_labels(cfg, "cpu", labels)
        flops_prompt = count_flops(functools.partial(model.encode_labels, sample)) / (len(sample) * len(templates))
        header.update(flops_per_clip=flops_clip, flops_per_prompt=flops_prompt, prompts=len(prompts))
        onnx_models = _onnx_models(model, cfg, Path(tmp), header, log) if cfg.onnx else {}
        hf_tok = hf_clip_tokenizer(Path(tmp) / "hf-tokenizer") if hf is not None else None
        rows += _tokenize_rows(prompts, hf_tok, cfg, log)
        for device in _devices(cfg.devices):
            cuda = device.startswith("cuda")
            batch = cfg.batch or (64 if cuda else 4)
            dtypes = list(cfg.dtypes) + (["fp16"] if cuda and "fp16" not in cfg.dtypes else [])
            for dname in dtypes:
                dtype = runtime.torch_dtype(dname)
                gflops = matmul_gflops(device, dtype)
                header["bounds"][f"{device} {dname}"] = gflops
                log(f"# matmul bound {device} {dname}: {gflops:.1f} GFLOP/s")
                rows.append(Row("matmul bound", "torch matmul", device, dname, None, 0, "", note=f"{gflops:.1f} GFLOP/s"))
                predicted = flops_clip / (gflops * 1e9)
                if predicted > cfg.max_predicted_s:
                    note = (f"skipped: {dname} matmul runs at {gflops:.1f} GFLOP/s here (no native unit), "
                            f"one clip would take ~{predicted:.0f} s")
                    log(f"# {note}")
                    rows.append(Row("clip latency", "actionclip", device, dname, None, 1, "clip", note=note))
                    continue
                impls = _torch_impls(model, hf, hf_tok, device, dtype, dname, batch, labels, video_path, cfg)
                if not cuda and dname == "fp32":  # ONNX Runtime (CPU, fp32 graphs) races the fp32 torch rows
                    impls += [_onnx_impl(om, name, batch, labels, video_path, cfg) for name, om in onnx_models.items()]
                with torch.inference_mode():
                    rows += _race_all(impls, device, batch, len(templates), prompts, flops_clip, flops_prompt, cfg, log)
                model.to(device="cpu", dtype=torch.float32)
                if hf is not None:
                    hf.to(device="cpu", dtype=torch.float32)
    del model, hf
    return rows, header


@dataclass
class _Impl:
    """One implementation's callables for each task (None: not measured)."""

    name: str
    dtype: str
    tasks: dict[str, Callable[[], Any] | None]
    text_labels: list[str] = field(default_factory=list)  # what the text task encodes (x templates)


_TASKS = ("clip latency", "batch throughput", "text throughput", "classify e2e")


def _race_all(impls: list[_Impl], device: str, batch: int, templates: int, prompts: list[str], flops_clip: float,
              flops_prompt: float, cfg: BenchConfig, log: Callable[[str], None]) -> list[Row]:
    """Time every implementation on each task, interleaved call by call (A, B, C, A, B, C ...), so
    that a shared machine's load changes hit all of them alike; medians per implementation."""
    rows: list[Row] = []
    for task in _TASKS:
        entrants = [impl for impl in impls if impl.tasks.get(task) is not None]
        samples: dict[str, list[float]] = {impl.name: [] for impl in entrants}
        peaks: dict[str, float | None] = {}
        for impl in entrants:  # warm-up call, which also gives the peak memory
            with PeakMemory(device) as mem:
                impl.tasks[task]()
                gpu.synchronize(device)
            peaks[impl.name] = mem.peak_mb
        spent = 0.0
        for _ in range(cfg.repeats):
            for impl in entrants:
                start = time.perf_counter()
                impl.tasks[task]()
                gpu.synchronize(device)
                samples[impl.name].append(time.perf_counter() - start)
                spent += samples[impl.name][-1]
            if spent >= cfg.budget_s * max(1, len(entrants)):
                break
        for impl in entrants:
            per_call = {"clip latency": 1, "batch throughput": batch, "classify e2e": 1}.get(task)
            if task == "text throughput":
                per_call = len(impl.text_labels) * templates
            unit = {"batch throughput": "videos", "text throughput": "prompts"}.get(task, "clip")
            flops = flops_prompt * per_call if task == "text throughput" else flops_clip * per_call
            row = Row(task, impl.name, device, impl.dtype, statistics.median(samples[impl.name]), per_call, unit,
                      flops, peaks[impl.name], samples[impl.name])
            if task == "text throughput":
                row.note = (f"{templates} templates x {per_call // templates} labels timed, tokenizing included; "
                            f"{len(prompts)} prompts would take {len(prompts) / row.rate:.1f} s")
            elif task == "classify e2e":
                row.note = "decode + preprocess + encode + score"
            log(f"  {task:<17} {impl.name:<17} {device} {impl.dtype}: {row.seconds:.4f} s "
                f"(median of {len(row.samples)})")
            rows.append(row)
    return rows


def _text_labels(cfg: BenchConfig, device: str, labels: list[str]) -> list[str]:
    n = cfg.text_labels or (len(labels) if device.startswith("cuda") else 8)
    step = max(1, len(labels) // n)
    return labels[::step][:n]  # spread over the list: prompt lengths as in the full set


def _hf_labels(hf: Any, tokens: torch.Tensor) -> torch.Tensor:
    """HF's usual zero-shot text path: batches of prompts padded to their longest (``padding=True``)."""
    encode = _hf_text(hf)
    out = torch.cat([encode(tokens[i : i + 256]).float() for i in range(0, len(tokens), 256)])
    return torch.nn.functional.normalize(out, dim=-1)


def _tokenize_rows(prompts: list[str], hf_tok: Any, cfg: BenchConfig, log: Callable[[str], None]) -> list[Row]:
    """Tokenizing alone, each implementation called in turn (interleaved, as :func:`_race_all`)."""
    from actionclip.text.tokenizer import token_ids

    impls = tokenizer_impls(hf_tok)
    note = "tokenizers not installed: no fast row" if "actionclip fast" not in impls else ""
    if hf_tok is not None and not np.array_equal(hf_token_ids(hf_tok, prompts), token_ids(prompts)):
        note = "HF's ids differ from ours on these prompts"  # HF skips OpenAI's ftfy/HTML clean-up
    samples: dict[str, list[float]] = {name: [] for name in impls}
    for fn in impls.values():  # warm-up: vocabularies loaded, caches filled
        fn(prompts)
    spent = 0.0
    for _ in range(max(cfg.repeats, 5)):
        for name, fn in impls.items():
            start = time.perf_counter()
            fn(prompts)
            samples[name].append(time.perf_counter() - start)
            spent += samples[name][-1]
        if spent >= cfg.budget_s:
            break
    rows = []
    for name, times in samples.items():
        row = Row("tokenize", name, "cpu", "-", statistics.median(times), len(prompts), "prompts", None, None, times,
                  note=note or f"{len(prompts)} prompts, one thread, caches warm")
        log(f"  tokenize          {name:<17} cpu: {row.seconds:.4f} s (median of {len(times)})")
        rows.append(row)
    return rows


def _torch_impls(model, hf, hf_tok, device, dtype, dname, batch, labels, video_path, cfg) -> list[_Impl]:
    from actionclip.text.templates import resolve_templates

    cuda = device.startswith("cuda")
    ours = model.to(device=device, dtype=dtype)
    gen = torch.Generator().manual_seed(1)
    one = torch.randn(1, cfg.frames, 3, model.input_resolution, model.input_resolution, generator=gen)
    many = torch.randn(batch, *one.shape[1:], generator=gen)
    one_d, many_d = (gpu.to_device(x, device, dtype) for x in (one, many))
    encode = gpu.maybe_compile(ours.encode_video, cfg.compile and cuda)
    if cfg.cuda_graphs and cuda:
        encode = gpu.CudaGraphEncoder(encode)
    sample = _text_labels(cfg, device, labels)
    with torch.inference_mode():
        label_emb = ours.encode_labels(labels[:10])
    impl = _Impl("actionclip", dname, {
        "clip latency": lambda: encode(one_d),
        "batch throughput": lambda: encode(many_d),
        "text throughput": lambda: ours.encode_labels(sample),
        "classify e2e": lambda: ours.classify(video_path, labels[:10], label_embeddings=label_emb),
    }, sample)
    impls = [impl]
    if hf is not None:
        hf_d = hf.to(device=device, dtype=dtype)
        hf_encode = gpu.maybe_compile(_hf_video(hf_d), cfg.compile and cuda)
        sample_prompts = [tpl.format(label) for tpl in resolve_templates() for label in sample]

        def hf_text() -> torch.Tensor:
            # HF's usual zero-shot call, tokenizing included as in our encode_labels
            tokens = torch.from_numpy(hf_token_ids(hf_tok, sample_prompts, padding="longest"))
            return _hf_labels(hf_d, tokens.to(device))

        ref = _Impl("hf-transformers", dname, {
            "clip latency": lambda: hf_encode(one_d),
            "batch throughput": lambda: hf_encode(many_d),
            "text throughput": hf_text if hf_tok is not None else None,
        }, sample)
        impls.append(ref)
    return impls


def _onnx_models(model, cfg: BenchConfig, tmp: Path, header: dict[str, Any], log) -> dict[str, Any]:
    try:
        from actionclip.onnx import backend as onnx_backend
        from actionclip.onnx.export import export_onnx
    except ImportError as exc:
        log(f"# onnx unavailable ({exc})")
        return {}
    result = export_onnx(model, tmp / "onnx", stem="bench", int8=cfg.int8, check=False)
    log(f"# exported ONNX in {result.seconds:.1f} s" + (f"; int8 drift {result.int8_drift}" if cfg.int8 else ""))
    header["int8_drift"] = result.int8_drift
    models = {"onnxruntime": onnx_backend.load(result.directory, threads=cfg.threads)}
    if cfg.int8:
        models["onnxruntime-int8"] = onnx_backend.load(result.directory, int8=True, threads=cfg.threads)
    return models


def _onnx_impl(om, name, batch, labels, video_path, cfg) -> _Impl:
    rng = np.random.default_rng(1)
    one = rng.standard_normal((1, om.num_frames, 3, om.input_resolution, om.input_resolution), dtype=np.float32)
    many = rng.standard_normal((batch, *one.shape[1:]), dtype=np.float32)
    sample = _text_labels(cfg, "cpu", labels)
    label_emb = om.encode_labels(labels[:10])
    impl = _Impl(name, "int8" if name.endswith("int8") else "fp32", {
        "clip latency": lambda: om.encode_video(one),
        "batch throughput": lambda: om.encode_video(many),
        "text throughput": lambda: om.encode_labels(sample),
        "classify e2e": lambda: om.classify(video_path, labels[:10], label_embeddings=label_emb),
    }, sample)
    return impl


# --- report ---------------------------------------------------------------------------------------


def _fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def format_table(rows: list[Row], header: dict[str, Any]) -> str:
    """A Markdown table: time, rate, speed-up over HF (same task/device/dtype), % of the FLOP bound."""
    bounds = header.get("bounds", {})
    ref = {(r.task, r.device, r.dtype): r for r in rows if r.impl == "hf-transformers" and r.seconds}
    lines = [
        f"Machine: {header.get('machine')}  ",
        f"Date: {header.get('date')}; model: {header.get('model')} ({header.get('frames')} frames), "
        f"{header.get('flops_per_clip', 0) / 1e9:.1f} GFLOP per clip, "
        f"{header.get('flops_per_prompt', 0) / 1e9:.2f} GFLOP per prompt (counted, as encode_labels batches); "
        f"load average at start {tuple(round(x, 1) for x in header.get('load_average') or ())}",
        "",
        "| task | implementation | device | dtype | median time | rate | vs HF | % of FLOP bound | peak mem |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    drift = header.get("int8_drift")
    footer = []
    if drift:
        footer.append("")
        footer.append("int8 drift vs fp32 ONNX on random inputs (max abs difference of unit embeddings; of "
                      "probabilities): " + ", ".join(f"{k} {v:.3g}" for k, v in drift.items()))
    for row in rows:
        if row.task == "matmul bound":
            lines.append(f"| matmul bound | torch matmul | {row.device} | {row.dtype} | | {row.note} | | 100% | |")
            continue
        if row.seconds is None:
            lines.append(f"| {row.task} | {row.impl} | {row.device} | {row.dtype} | - | {row.note} | | | |")
            continue
        rate = f"{row.rate:.1f} {row.unit}/s" if row.unit != "clip" else f"{row.rate:.2f} clips/s"
        base = ref.get((row.task, row.device, row.dtype)) if row.task != "classify e2e" else None
        vs_hf = f"{base.seconds / row.seconds:.2f}x" if base else ""
        bound = bounds.get(f"{row.device} {row.dtype}") or bounds.get(f"{row.device} fp32")
        pct = f"{100 * row.flops / (bound * 1e9) / row.seconds:.0f}%" if row.flops and bound else ""
        if row.dtype == "int8":
            pct += " (of fp32)"
        note = f" ({row.note})" if row.note and row.task in ("text throughput", "tokenize") else ""
        peak = f"{row.peak_mb:.0f} MB" if row.peak_mb is not None else ""
        lines.append(f"| {row.task} | {row.impl} | {row.device} | {row.dtype} | {_fmt_time(row.seconds)} | "
                     f"{rate}{note} | {vs_hf} | {pct} | {peak} |")
    return "\n".join(lines + footer)


def rows_to_json(rows: list[Row], header: dict[str, Any]) -> str:
    return json.dumps({"header": header, "rows": [asdict(r) | {"rate": r.rate} for r in rows]}, indent=2)
