"""Benchmark: video collections (docs/index.md). Prints figures; not a test.

Parts (``--parts``, default all):

* ``throughput``: ``index`` of generated clips with a full-size random ViT-B/32-8f, local vs
  ``--ray`` (a local Ray runtime on this machine), videos/s, and the per-video decode and encode
  costs that the 10-million-video estimate in docs/index.md is made from.
* ``classify``: ``Index.classify`` over 100,000 stored embeddings with the 400 Kinetics labels (16
  templates: 6,400 prompts, label embeddings from the disk cache), goal < 2 s.
* ``search``: 1,000,000 stored embeddings, brute force (LanceDB flat scan) vs the IVF-SQ ANN index,
  latency and recall@10 against exact numpy search; goal ANN < 50 ms at recall@10 >= 0.95.
* ``cache``: first vs second run of ``actionclip classify --labels k400`` (one clip, fresh processes).

Synthetic embeddings (``search``, ``classify``): a mixture of 1,000 clusters in 512-D. Video
embeddings of a real collection are not uniform on the sphere: clips of one action, scene or source
lie close together, and CLIP-like embeddings occupy a narrow cone. Each vector is a random unit
centre plus Gaussian noise (``--spread``, default 0.8 times the centre's norm spread over 512
dimensions: a vector's cosine to its centre is ~0.78, to another cluster's centre ~0), normalised;
queries are drawn the same way. Uniformly random unit vectors are the worst case for any ANN
index (no structure to exploit; every vector is nearly orthogonal to every other): ``--uniform``
measures that too.

Usage::

    python benchmarks/bench_index.py                       # everything (~15 min on 2 cores)
    python benchmarks/bench_index.py --parts search --uniform
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DIM = 512


def log(*args: object) -> None:
    print(*args, flush=True)


def checkpoint(workdir: Path) -> Path:
    from actionclip._dev.weights import write_checkpoint

    path = workdir / "random-B32.pt"
    return path if path.exists() else write_checkpoint(path, size="B/32", frames=8, fusion="Transf")


def synthetic(n: int, seed: int, uniform: bool, spread: float, clusters: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if uniform:
        x = rng.standard_normal((n, DIM), dtype=np.float32)
    else:
        centres = np.random.default_rng(12345).standard_normal((clusters, DIM), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        x = centres[rng.integers(0, clusters, n)]
        x += rng.standard_normal((n, DIM), dtype=np.float32) * (spread / np.sqrt(DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def fill(store, vectors: np.ndarray, chunk: int = 100_000) -> None:
    """Rows as ``index`` writes them, without encoding anything."""
    for start in range(0, len(vectors), chunk):
        part = vectors[start : start + chunk]
        n = len(part)
        names = [f"/synthetic/{start + i:07d}.mp4" for i in range(n)]
        meta = {"path": names, "video": names, "kind": ["video"] * n, "start": [0.0] * n, "end": [10.0] * n,
                "size": [1] * n, "mtime_ns": [0] * n, "duration": [10.0] * n}
        store.add(meta, {"vector": part})


# ----------------------------------------------------------------------------------------------


def part_throughput(workdir: Path, ckpt: Path, videos: int) -> None:
    import actionclip
    from actionclip._dev.videos import make_test_video

    folder = workdir / "clips"
    folder.mkdir(exist_ok=True)
    for i in range(videos):
        path = folder / f"clip{i:03d}.mp4"
        if not path.exists():
            make_test_video(path, seconds=5.0, size=(320, 240), fps=25)
    log(f"\n## index throughput: {videos} generated clips (5 s, 320x240, 25 fps), ViT-B/32-8f random weights")
    model = actionclip.load(ckpt)
    views = model.views
    t0 = time.perf_counter()
    clips = [views.sample(str(p), frames=8) for p in sorted(folder.glob("*.mp4"))[:8]]
    decode = (time.perf_counter() - t0) / len(clips)
    pixels = views.pixels(clips[0])
    with model.inference():
        model.encode_video(pixels)
        t0 = time.perf_counter()
        for _ in range(5):
            model.encode_video(pixels)
    encode = (time.perf_counter() - t0) / 5
    log(f"per video: decode + sample {decode * 1000:.0f} ms (1 core), encode {encode * 1000:.0f} ms "
        f"({model.dtype}, {os.cpu_count()} cores)")
    for name, ray in (("local", None), ("--ray (local runtime)", True)):
        out = workdir / f"throughput-{name[:5].strip('-')}"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        idx = actionclip.index([folder], out, model=str(ckpt), ray=ray)
        seconds = time.perf_counter() - t0
        log(f"| {name} | {idx.report.encoded} videos | {seconds:.1f} s | {idx.report.encoded / seconds:.2f} videos/s |")


def part_classify(workdir: Path, ckpt: Path, spread: float) -> None:
    import actionclip
    from actionclip._dev.videos import make_test_video
    from actionclip.collection.store import Store
    from actionclip.training.datasets import builtin_classes

    log("\n## classify --index: 100,000 stored embeddings x 400 labels (16 templates)")
    out = workdir / "classify-100k"
    shutil.rmtree(out, ignore_errors=True)
    video = make_test_video(workdir / "one.mp4", seconds=2.0, size=(160, 120))
    actionclip.index([video], out, model=str(ckpt))  # records the model, creates the table
    fill(Store(out), synthetic(100_000 - 1, 1, False, spread))
    idx = actionclip.open_index(out)
    labels = builtin_classes("k400")
    t0 = time.perf_counter()
    idx.classify(labels)
    log(f"first call (encodes 6,400 prompts, fills the label cache; model already loaded): "
        f"{time.perf_counter() - t0:.2f} s")
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        result = idx.classify(labels)
        times.append(time.perf_counter() - t0)
    log(f"| Index.classify, 100,000 videos x 400 labels, cached labels | {min(times):.2f} s (best of 3) | "
        f"probs {result.probs.shape} |")
    t0 = time.perf_counter()
    records = sum(1 for _ in result.records(top_k=5))
    log(f"| records with the top 5 labels, 100,000 videos | {time.perf_counter() - t0:.2f} s | {records} |")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "actionclip", "classify", "--index", str(out), "--labels", "k400",
                           "--top-k", "5", "--json"], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-2000:]
    log(f"| CLI classify --index --labels k400 --top-k 5 --json (new process: imports, model load) | "
        f"{seconds:.1f} s | {proc.stdout.count(chr(10))} lines |")


def part_search(workdir: Path, n: int, uniform: bool, spread: float, queries: int) -> None:
    from actionclip.collection.store import Store

    kind = "uniform random unit vectors" if uniform else f"1,000-cluster mixture (spread {spread})"
    log(f"\n## search: {n:,} stored embeddings, {kind}")
    out = workdir / f"search-{n}-{'u' if uniform else 'c'}"
    vectors = synthetic(n, 2, uniform, spread)
    store = Store(out)
    if not out.exists():
        t0 = time.perf_counter()
        out.mkdir(parents=True)
        fill(store, vectors)
        log(f"writing {n:,} rows: {time.perf_counter() - t0:.1f} s")
    table = store.table()
    qs = synthetic(queries, 3, uniform, spread)
    truth = np.argsort(-(qs @ vectors.T), axis=1)[:, :10]
    t0 = time.perf_counter()
    for q in qs[:3]:
        np.argsort(-(vectors @ q))[:10]
    log(f"numpy exact (in memory, for reference): {(time.perf_counter() - t0) / 3 * 1000:.0f} ms/query")

    def run(label: str, configure) -> None:
        lat, hits = [], 0
        for q, want in zip(qs, truth):
            t0 = time.perf_counter()
            rows = configure(table.search(q, vector_column_name="vector").metric("dot").limit(10)
                             .select(["path"])).to_arrow()
            lat.append(time.perf_counter() - t0)
            got = {int(p.split("/")[-1][:7]) for p in rows["path"].to_pylist()}
            hits += len(got & set(want.tolist()))
        lat_ms = np.array(lat[1:]) * 1000
        log(f"| {label} | {np.median(lat_ms):.1f} ms median | {np.percentile(lat_ms, 95):.1f} ms p95 | "
            f"recall@10 {hits / (10 * len(qs)):.3f} |")

    if not table.list_indices():
        run("brute force (flat scan)", lambda s: s)
        t0 = time.perf_counter()
        store.create_ann()
        log(f"building IVF-SQ ({int(round(n ** 0.5))} partitions, 8 bits per dimension): "
            f"{time.perf_counter() - t0:.0f} s")
    else:
        run("brute force (flat scan)", lambda s: s.bypass_vector_index())
    for nprobes, refine in ((10, 1), (20, 1), (20, 5), (40, 5)):
        run(f"ANN nprobes={nprobes} refine={refine}", lambda s, a=nprobes, b=refine: s.nprobes(a).refine_factor(b))


def part_cache(workdir: Path, ckpt: Path) -> None:
    from actionclip._dev.videos import make_test_video

    log("\n## classify --labels k400: first vs second run (label cache), one clip, fresh processes")
    video = make_test_video(workdir / "one.mp4", seconds=2.0, size=(160, 120))
    cache = Path(tempfile.mkdtemp(prefix="label-cache-"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "ACTIONCLIP_CACHE": str(cache)}
    for run in ("first", "second"):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "actionclip", "classify", str(video), "--labels", "k400",
                               "--model", str(ckpt), "--top-k", "3"], capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        log(f"| {run} run | {time.perf_counter() - t0:.1f} s |")
    shutil.rmtree(cache, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default="throughput,classify,search,cache")
    p.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "actionclip-bench-index"))
    p.add_argument("--videos", type=int, default=24, help="clips for the throughput part")
    p.add_argument("--rows", type=int, default=1_000_000, help="stored embeddings for the search part")
    p.add_argument("--queries", type=int, default=50)
    p.add_argument("--spread", type=float, default=0.8)
    p.add_argument("--uniform", action="store_true", help="search: also uniformly random unit vectors")
    args = p.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ACTIONCLIP_CACHE", str(workdir / "cache"))
    parts = args.parts.split(",")
    ckpt = checkpoint(workdir) if set(parts) & {"throughput", "classify", "cache"} else None
    if "throughput" in parts:
        part_throughput(workdir, ckpt, args.videos)
    if "classify" in parts:
        part_classify(workdir, ckpt, args.spread)
    if "search" in parts:
        part_search(workdir, args.rows, False, args.spread, args.queries)
        if args.uniform:
            part_search(workdir, args.rows, True, args.spread, args.queries)
    if "cache" in parts:
        part_cache(workdir, ckpt)


if __name__ == "__main__":
    main()
