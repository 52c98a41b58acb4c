"""Device/dtype selection, the bf16 path's accuracy, GPU helpers' CPU behaviour, and the benchmark.

bf16 tolerance (documented in docs/speed.md): on the same inputs, bf16 and fp32 label probabilities
differ by at most BF16_PROB_TOL (logit scale 100 makes the softmax sharp, so embedding errors of
~1e-3 become probability errors of ~1e-2), video embeddings keep cosine >= BF16_MIN_COS, and the top
label is the same wherever fp32's top-2 margin exceeds 2 x BF16_PROB_TOL.
"""

from __future__ import annotations

import argparse

import pytest
import torch

from actionclip import runtime
from actionclip.errors import UsageError

BF16_PROB_TOL = 0.02
BF16_MIN_COS = 0.999
LABELS = ["riding a bike", "playing the violin", "juggling balls", "swimming", "cooking", "dancing",
          "reading a book", "running"]

AMX_CPUINFO = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse4_2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8
"""
AVX512BF16_CPUINFO = "model name : AMD EPYC 9654\nflags : avx2 avx512f avx512_bf16\n"
AVX2_CPUINFO = "model name : AMD EPYC 7B13\nflags : fpu avx avx2 fma\n"


def test_cpuinfo_flags():
    amx = runtime.parse_cpuinfo(AMX_CPUINFO)
    assert amx.bf16_unit == "AMX-BF16" and amx.vector_isa == "AVX512" and "Xeon" in amx.model
    assert runtime.parse_cpuinfo(AVX512BF16_CPUINFO).bf16_unit == "AVX512-BF16"
    plain = runtime.parse_cpuinfo(AVX2_CPUINFO)
    assert plain.bf16_unit is None and plain.vector_isa == "AVX2"
    assert "emulated" in plain.describe()
    arm = runtime.parse_cpuinfo("Hardware : X\nFeatures : fp asimd bf16\n")
    assert arm.bf16_unit is None  # ARM's flag names differ; auto stays on fp32 there


@pytest.mark.parametrize("text,expected", [(AMX_CPUINFO, "bf16"), (AVX512BF16_CPUINFO, "bf16"), (AVX2_CPUINFO, "fp32")])
def test_auto_dtype_follows_native_bf16(monkeypatch, text, expected):
    monkeypatch.setattr(runtime, "cpu_info", lambda: runtime.parse_cpuinfo(text))
    choice = runtime.resolve("cpu", "auto")
    assert (choice.device, choice.dtype) == ("cpu", expected)
    assert choice.torch_dtype == runtime.torch_dtype(expected)
    assert ("AMX" in choice.reason or "AVX512" in choice.reason)
    # actionclip.load's default and the CLI's --dtype auto are this same choice (an explicit one is kept).
    import argparse

    from actionclip.cli.options import add_runtime

    parser = argparse.ArgumentParser()
    add_runtime(parser)
    assert runtime.from_args(parser.parse_args(["--device", "cpu"])).dtype == expected
    assert runtime.from_args(parser.parse_args(["--device", "cpu", "--dtype", "fp32"])).dtype == "fp32"


def test_explicit_choices_and_errors(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_info", lambda: runtime.parse_cpuinfo(AVX2_CPUINFO))
    slow = runtime.resolve("cpu", "bf16")
    assert slow.dtype == "bf16" and "slow" in slow.reason
    assert runtime.resolve("cpu", "fp32").reason == "requested"
    assert runtime.dtype_name(torch.float16) == "fp16" and runtime.dtype_name("bfloat16") == "bf16"
    with pytest.raises(UsageError, match="dtype 'int4'"):
        runtime.resolve("cpu", "int4")
    with pytest.raises(UsageError, match="device 'tpu'"):
        runtime.resolve("tpu", "auto")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            runtime.resolve("cuda", "auto")
        assert runtime.resolve("auto", "auto").device == "cpu"


def test_threads_and_arguments():
    before = torch.get_num_threads()
    try:
        assert runtime.configure_threads(1) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    with pytest.raises(UsageError, match="threads 0"):
        runtime.configure_threads(0)
    from actionclip.cli.options import add_runtime

    parser = argparse.ArgumentParser()
    add_runtime(parser)
    args = parser.parse_args(["--device", "cpu", "--dtype", "fp32"])
    assert runtime.from_args(args).describe().startswith("cpu fp32")
    with pytest.raises(SystemExit):
        parser.parse_args(["--dtype", "fp8"])


def test_gpu_helpers_on_cpu():
    from actionclip.bench import gpu

    x = torch.arange(6, dtype=torch.uint8).view(2, 3)
    y = gpu.to_device(x, "cpu", torch.float32)
    assert y.dtype == torch.float32 and torch.equal(y, x.float())
    fn = lambda t: t + 1  # noqa: E731
    assert gpu.maybe_compile(fn, enabled=False) is fn
    gpu.synchronize("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            gpu.CudaGraphEncoder(fn)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (GPU helpers' real path)")
def test_cuda_graph_encoder_matches_eager():  # pragma: no cover - runs on GPU machines only
    from actionclip.bench import gpu

    model = torch.nn.Linear(16, 8).cuda().eval()
    x = torch.randn(4, 16)
    graph = gpu.CudaGraphEncoder(model)
    with torch.inference_mode():
        eager = model(gpu.to_device(x, "cuda"))
        for _ in range(2):
            assert torch.allclose(graph(gpu.to_device(x, "cuda")), eager)


# --- bf16 parity ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fp32_bf16(tiny_model):
    """The tiny model in fp32 and a bf16 copy, with their label embeddings (3 of the 16 templates:
    bf16 is emulated, hence slow, on CPUs without AMX/AVX512-BF16)."""
    import copy

    bf16 = copy.deepcopy(tiny_model).to(torch.bfloat16)
    templates = ["a video of {}", "Human action of {}", "{}"]
    with torch.inference_mode():
        return (tiny_model, tiny_model.encode_labels(LABELS, templates)), (bf16, bf16.encode_labels(LABELS, templates))


def _compare(fp32_bf16, pixels):
    (fp32, labels32), (bf16, labels16) = fp32_bf16
    with torch.inference_mode():
        emb32, emb16 = fp32.encode_video(pixels), bf16.encode_video(pixels).float()
        p32, p16 = fp32.probabilities(emb32, labels32), bf16.probabilities(emb16, labels16)
    cos = torch.nn.functional.cosine_similarity(emb32, emb16, dim=-1)
    return p32, p16, cos


def _top1_holds_where_margin_allows(p32, p16):
    top2 = p32.topk(2, dim=-1).values
    clear = (top2[:, 0] - top2[:, 1]) > 2 * BF16_PROB_TOL
    return bool((p32.argmax(-1) == p16.argmax(-1))[clear].all()), int(clear.sum())


def test_bf16_probabilities_within_tolerance(fp32_bf16):
    (fp32, _), (bf16, _) = fp32_bf16
    assert bf16.dtype == torch.bfloat16
    r = fp32.input_resolution
    pixels = torch.randn(6, fp32.num_frames, 3, r, r, generator=torch.Generator().manual_seed(0))
    p32, p16, cos = _compare(fp32_bf16, pixels)
    diff = (p32 - p16).abs().max().item()
    print(f"bf16 vs fp32 on random pixels: max |dp| = {diff:.2e}, min cos = {cos.min().item():.6f}")
    assert 0 < diff <= BF16_PROB_TOL  # > 0: the bf16 path really ran in bf16
    assert cos.min().item() >= BF16_MIN_COS
    holds, _ = _top1_holds_where_margin_allows(p32, p16)
    assert holds


def test_bf16_top_label_holds_on_shared_clips(fp32_bf16, shared_data):
    import csv

    fp32 = fp32_bf16[0][0]
    with open(shared_data / "clips" / "manifest.csv", newline="") as fh:
        paths = [shared_data / "clips" / row["path"] for row in csv.DictReader(fh)][::8]
    pixels = torch.stack([fp32.prepare_video(p)[0] for p in paths])
    p32, p16, cos = _compare(fp32_bf16, pixels)
    diff = (p32 - p16).abs().max().item()
    holds, clear = _top1_holds_where_margin_allows(p32, p16)
    print(f"bf16 vs fp32 on {len(paths)} shared clips: max |dp| = {diff:.2e}, "
          f"top-1 kept on {clear} clips with a clear margin")
    assert diff <= BF16_PROB_TOL and cos.min().item() >= BF16_MIN_COS and holds


# --- benchmark building blocks --------------------------------------------------------------------


def test_hf_reference_holds_the_same_weights(tiny_model):
    pytest.importorskip("transformers")
    from actionclip.bench.run import _hf_text, _hf_video, hf_from_clip
    from actionclip.text.tokenizer import tokenize

    hf = hf_from_clip(tiny_model.clip)
    r = tiny_model.input_resolution
    pixels = torch.randn(2, 3, 3, r, r, generator=torch.Generator().manual_seed(2))
    tokens = tokenize(["a video of juggling", "The woman is swimming fast"])
    with torch.inference_mode():
        frames = tiny_model.encode_image(pixels.flatten(0, 1)).view(2, 3, -1).mean(1)
        assert torch.allclose(_hf_video(hf)(pixels), frames, atol=1e-4)
        assert torch.allclose(_hf_text(hf)(tokens), tiny_model.encode_tokens(tokens), atol=1e-4)


def test_flop_count_and_matmul_bound(tiny_model):
    from actionclip.bench.run import count_flops, matmul_gflops

    r, t = tiny_model.input_resolution, tiny_model.num_frames
    one = count_flops(lambda: tiny_model.encode_video(torch.zeros(1, t, 3, r, r)))
    two = count_flops(lambda: tiny_model.encode_video(torch.zeros(2, t, 3, r, r)))
    assert one > 0 and two == pytest.approx(2 * one, rel=0.01)
    # analytic ViT count for the frames: patch conv + per layer 24 n w^2 + 4 n^2 w (+ projection)
    cfg = tiny_model.clip.config
    n, w = (cfg.image_resolution // cfg.vision_patch_size) ** 2 + 1, cfg.vision_width
    vit = t * (2 * (n - 1) * 3 * cfg.vision_patch_size**2 * w + cfg.vision_layers * (24 * n * w * w + 4 * n * n * w))
    assert vit < one < 1.5 * vit  # the rest: projection + Transf fusion
    # a rate, not a speed target (the CPU may be shared): positive and physically plausible
    assert 0 < matmul_gflops("cpu", torch.float32, max_n=256, budget_s=0.5) < 1e5


@pytest.mark.heavy
def test_bench_runs_and_reports_ratios(tmp_path):
    from actionclip._dev.videos import make_test_video
    from actionclip.bench.run import BenchConfig, format_table, run_bench

    clip = make_test_video(tmp_path / "c.mp4", seconds=1, size=(64, 48))
    cfg = BenchConfig(model="tiny", labels=4, dtypes=("fp32",), repeats=2, budget_s=0.5, onnx=False,
                      hf=True, clip=str(clip), text_labels=2, batch=2)
    rows, header = run_bench(cfg, log=lambda _: None)
    tasks = {(r.task, r.impl) for r in rows if r.seconds}
    assert {("clip latency", "actionclip"), ("batch throughput", "hf-transformers"),
            ("text throughput", "actionclip"), ("text throughput", "hf-transformers"), ("classify e2e", "actionclip"),
            ("tokenize", "actionclip fast"), ("tokenize", "actionclip python"), ("tokenize", "hf-transformers")} <= tasks
    text = [r for r in rows if r.task == "text throughput"]
    assert all("tokenizing included" in r.note for r in text)
    tokenize_rows = [r for r in rows if r.task == "tokenize"]
    # 16 templates x 4 labels, and HF's tokenizer gave our ids on them (else the note says so)
    assert all(r.per_call == 64 and r.unit == "prompts" and "differ" not in r.note for r in tokenize_rows)
    assert all(r.seconds > 0 and r.rate > 0 for r in rows if r.seconds)
    table = format_table(rows, header)
    assert "| matmul bound | torch matmul | cpu | fp32 |" in table
    assert "1.00x" in table and "% " not in table.split("|")[0]
    assert "| tokenize | actionclip fast | cpu | - |" in table
    assert header["flops_per_clip"] > 0 and header["bounds"]["cpu fp32"] > 0
