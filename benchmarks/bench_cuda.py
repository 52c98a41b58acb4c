"""CUDA encoders vs Hugging Face: one clip (CUDA graphs), large batches (torch.compile), text, X-CLIP.

Issue 18's GPU goals, printed as one table plus a line per goal: ours >= 1.3x HF at batch >= 256 in
fp16 and bf16, >= 1.0x HF at batch 1, text >= 1.0x HF, X-CLIP's blocks the same way, every fast
variant within bf16 tolerance of fp32. Random full-size weights (``--model B/32``); HF is a
``transformers.CLIPModel`` holding the same weights (``actionclip.bench.run.hf_from_clip``).

Variants of ours (:mod:`actionclip.model.cuda`): ``eager`` (graphs off), ``graphs`` (the default
policy: batches <= 8 replay a captured graph), ``compile`` (``torch.compile``, ``--compile-mode``;
the compile time is printed). Text: the same pre-tokenised prompts for both sides (tokenising
counted for neither), ours sorted by length and batched as ``encode_labels`` does, HF padded to each
batch's longest as its users do. Parity: L2-normalised embeddings of each variant vs our fp32 eager,
on the same random pixels: max |difference| and the smallest cosine.

Timing: CUDA events are implicit in ``synchronize``; each variant warm-up, then ``--repeats`` runs
interleaved with the others, median reported. ``--device cpu --model tiny --dry-run`` runs the same
code paths (graphs and compile stay off on CPU) in seconds, for the tests.

    python benchmarks/bench_cuda.py [--model B/32] [--dtypes fp16,bf16] [--batches 1,256]
                                    [--compile-mode default] [--xclip B/32] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from actionclip import runtime
from actionclip.bench import gpu
from actionclip.bench.run import build_models, default_labels, hf_from_clip
from actionclip.model import cuda

# bf16 keeps 8 bits of mantissa: unit embeddings after 12 blocks land within ~1e-2 of fp32.
TOLERANCE_MAX_ABS = 3e-2
TOLERANCE_MIN_COS = 0.999


def _median(fns: dict[str, Callable[[], object]], device: str, repeats: int) -> dict[str, float]:
    for fn in fns.values():
        fn()
    gpu.synchronize(device)
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            gpu.synchronize(device)
            samples[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in samples.items()}


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)


def _parity(out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    a, b = _unit(out), _unit(ref)
    return float((a - b).abs().max()), float((a * b).sum(-1).min())


class Report:
    def __init__(self, out: Path | None, header: str):
        self.header = header
        self.lines: list[str] = []
        self.goals: list[str] = []
        self.out = out

    def row(self, *cells: object) -> None:
        line = "| " + " | ".join(str(c) for c in cells) + " |"
        self.lines.append(line)
        print(line, flush=True)
        self.write()  # after every row: a run stopped by its time limit keeps what it measured

    def goal(self, text: str, met: bool) -> None:
        line = f"- {text}: {'met' if met else 'NOT met'}"
        self.goals.append(line)
        print(line, flush=True)
        self.write()

    def write(self) -> None:
        if self.out is None:
            return
        head = ["| model | dtype | task | batch | implementation | median | rate | vs HF | parity vs fp32 |",
                "|---|---|---|---|---|---|---|---|---|"]
        self.out.write_text("\n".join([self.header, "", *head, *self.lines, "", *self.goals]) + "\n")


def _variants(model, device: str, compile_mode: str | None):
    """(name, policy changes) of our variants on this device."""
    out = [("eager", dict(graphs_max_batch=0, compile=False))]
    if device.startswith("cuda"):
        out.append(("graphs", dict(graphs_max_batch=8, compile=False)))
        if compile_mode:
            out.append(("compile", dict(graphs_max_batch=0, compile=True, compile_mode=compile_mode)))
    return out


def video_rows(rep: Report, label: str, model, hf, device: str, dtype_name: str, batches: list[int],
               repeats: int, compile_mode: str | None, ref32: dict[int, torch.Tensor], pixels: dict[int, torch.Tensor]):
    dtype = runtime.torch_dtype(dtype_name)
    model.to(device=device, dtype=dtype)
    if hf is not None:
        hf.to(device=device, dtype=dtype)
    from actionclip.bench.run import _hf_video

    hf_encode = _hf_video(hf) if hf is not None else None
    results: dict[tuple[int, str], float] = {}
    for batch in batches:
        x = pixels[batch].to(device=device, dtype=dtype)
        fns: dict[str, Callable[[], object]] = {}
        parity: dict[str, tuple[float, float]] = {}
        for name, changes in _variants(model, device, compile_mode if batch > 8 else None):
            if name == "graphs" and batch > 8:
                continue
            own = _variant(model, changes)
            started = time.perf_counter()
            try:
                with torch.inference_mode():
                    out = own(x)
                    gpu.synchronize(device)
            except Exception as exc:  # noqa: BLE001 - a variant that fails is a row, not the end of the run
                rep.row(label, dtype_name, "video", batch, name, "failed", "", "", " ".join(str(exc).split())[:160])
                continue
            first = time.perf_counter() - started
            emb = out[0] if isinstance(out, tuple) else getattr(out, "embedding", out)
            parity[name] = _parity(emb, ref32[batch])
            if name == "compile":
                print(f"# {label} {dtype_name} batch {batch}: compile + first call {first:.1f} s", flush=True)
            fns[name] = (lambda own=own, x=x: own(x))
        if hf_encode is not None:
            fns["hf-transformers"] = lambda x=x: hf_encode(x)
        with torch.inference_mode():
            times = _median(fns, device, repeats)
        for name, seconds in times.items():
            results[(batch, name)] = seconds
            base = times.get("hf-transformers")
            vs = f"{base / seconds:.2f}x" if base else ""
            par = parity.get(name)
            ptxt = f"max {par[0]:.1e}, cos {par[1]:.5f}" if par else ""
            rep.row(label, dtype_name, "video", batch, name, f"{seconds * 1e3:.2f} ms", f"{batch / seconds:.1f}/s", vs, ptxt)
            if par:
                rep.goal(f"{label} {dtype_name} batch {batch} {name} within tolerance of fp32 "
                         f"(max {par[0]:.1e} <= {TOLERANCE_MAX_ABS}, cos {par[1]:.5f} >= {TOLERANCE_MIN_COS})",
                         par[0] <= TOLERANCE_MAX_ABS and par[1] >= TOLERANCE_MIN_COS)
    cuda.configure(model)  # back to the default policy
    return results


def _variant(model, changes: dict) -> Callable[[torch.Tensor], object]:
    """``model.encode_video`` under one variant's policy. The variants share one model (and its
    weights); each keeps its own graphs or compiled function, swapped in at each call."""
    policy = cuda.CudaPolicy(**changes)
    runners: dict[str, object] = {}

    def call(x: torch.Tensor) -> object:
        model.__dict__[cuda._POLICY_ATTR] = policy
        model.__dict__[cuda._RUNNERS_ATTR] = runners
        return model.encode_video(x)

    return call


def text_rows(rep: Report, model, hf, device: str, dtype_name: str, prompts: int, repeats: int) -> None:
    from actionclip.bench.run import _hf_labels
    from actionclip.model.base import TEXT_BATCH
    from actionclip.text.templates import resolve_templates
    from actionclip.text.tokenizer import token_ids

    dtype = runtime.torch_dtype(dtype_name)
    model.to(device=device, dtype=dtype)
    templates = resolve_templates()
    labels = default_labels(max(1, prompts // len(templates)))
    texts = [t.format(label) for t in templates for label in labels]
    ids = torch.from_numpy(token_ids(texts, model.context_length))
    order = torch.argsort(ids.argmax(-1), stable=True)
    ours_ids = ids[order].to(device)
    fns: dict[str, Callable[[], object]] = {
        "eager": lambda: torch.cat([model.encode_tokens(ours_ids[i: i + TEXT_BATCH])
                                    for i in range(0, len(texts), TEXT_BATCH)]),
    }
    if hf is not None:
        hf.to(device=device, dtype=dtype)
        hf_ids = ids.to(device)
        fns["hf-transformers"] = lambda: _hf_labels(hf, hf_ids)
    with torch.inference_mode():
        times = _median(fns, device, repeats)
    base = times.get("hf-transformers")
    for name, seconds in times.items():
        vs = f"{base / seconds:.2f}x" if base else ""
        rep.row("text", dtype_name, "text", len(texts), name, f"{seconds * 1e3:.2f} ms",
                f"{len(texts) / seconds:.0f} prompts/s", vs, "")
    if base and device.startswith("cuda"):
        rep.goal(f"text {dtype_name}, {len(texts)} prompts: ours {base / times['eager']:.2f}x HF (goal >= 1.0x)",
                 base / times["eager"] >= 1.0)


def _xclip(size: str, frames: int):
    from actionclip._dev.xclip_weights import random_xclip
    from actionclip.families.xclip import default_config
    from actionclip.families.xclip.model import XCLIP

    net = random_xclip(size, frames=frames, seed=0)
    return XCLIP(net, replace(default_config(), frames=frames), name=f"random X-CLIP {size}").eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="B/32", help="tiny, B/32, B/16 (random weights)")
    p.add_argument("--xclip", default="B/32", help="X-CLIP size for its rows ('' to skip)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtypes", default="fp16,bf16")
    p.add_argument("--batches", default="1,256")
    p.add_argument("--xclip-batches", default="1,64")
    p.add_argument("--xclip-compile-mode", default="", help="torch.compile mode for X-CLIP's large batch ('': skip)")
    p.add_argument("--prompts", type=int, default=1600, help="text rows: 16 templates x prompts/16 labels")
    p.add_argument("--compile-mode", default="default",
                   help="torch.compile mode for the large batches ('' to skip compiling)")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--no-hf", action="store_true")
    p.add_argument("--out", type=Path, help="also write the table (Markdown) here")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes, 2 repeats: the code paths only")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench_cuda: no CUDA device here: nothing measured")
        return 0
    if args.dry_run:
        args.repeats, args.prompts = 2, 32
    device = args.device
    batches = [int(b) for b in args.batches.split(",")]
    header = f"# {runtime.describe_machine()}; torch {torch.__version__}; model {args.model}-8f random weights"
    rep = Report(args.out, header)
    print(header, flush=True)
    print("| model | dtype | task | batch | implementation | median | rate | vs HF | parity vs fp32 |", flush=True)
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    model = build_models(args.model)
    hf = None
    if not args.no_hf:
        try:
            hf = hf_from_clip(model.clip)
        except Exception as exc:  # noqa: BLE001 - our rows still mean something without the reference
            print(f"# no Hugging Face reference: {' '.join(str(exc).split())[:200]}", flush=True)
    r, t = model.input_resolution, model.num_frames
    gen = torch.Generator().manual_seed(0)
    pixels = {b: torch.randn(b, t, 3, r, r, generator=gen) for b in batches}
    model.to(device=device, dtype=torch.float32)
    with torch.inference_mode():
        cuda.configure(model, graphs_max_batch=0)
        ref32 = {b: model.encode_video(pixels[b].to(device)).float() for b in batches}
        cuda.configure(model)
    label = f"ActionCLIP {args.model}"
    for dname in args.dtypes.split(","):
        res = video_rows(rep, label, model, hf, device, dname, batches, args.repeats, args.compile_mode or None,
                         ref32, pixels)
        for batch in batches:
            base = res.get((batch, "hf-transformers"))
            best = min((s for (b, n), s in res.items() if b == batch and n != "hf-transformers"), default=None)
            if base and best and device.startswith("cuda"):
                goal = 1.3 if batch >= 256 else 1.0
                rep.goal(f"{label} {dname} batch {batch}: best of ours {base / best:.2f}x HF (goal >= {goal}x)",
                         base / best >= goal)
        try:
            text_rows(rep, model, hf, device, dname, args.prompts, args.repeats)
        except Exception as exc:  # noqa: BLE001
            rep.row("text", dname, "text", args.prompts, "failed", "", "", "", " ".join(str(exc).split())[:160])
    model.to("cpu")
    del model, hf
    if args.xclip:
        xsize = "tiny" if args.dry_run else args.xclip
        xmodel = _xclip(xsize, 8)
        xr = xmodel.input_resolution
        xbatches = [int(b) for b in args.xclip_batches.split(",")]
        xpix = {b: torch.randn(b, 8, 3, xr, xr, generator=gen) for b in xbatches}
        xmodel.to(device=device, dtype=torch.float32)
        with torch.inference_mode():
            cuda.configure(xmodel, graphs_max_batch=0)
            xref = {b: xmodel.encode_video(xpix[b].to(device)).embedding.float() for b in xbatches}
            cuda.configure(xmodel)
        for dname in args.dtypes.split(","):
            video_rows(rep, f"X-CLIP {xsize}", xmodel, None, device, dname, xbatches, args.repeats,
                       args.xclip_compile_mode or None, xref, xpix)
    rep.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
