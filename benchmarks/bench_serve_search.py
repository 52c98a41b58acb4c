"""Benchmark: ``GET /v1/search`` of ``actionclip serve --index`` with 8 and 32 concurrent clients.

The index is synthesised: ``--rows`` entries (one in ten a whole video, the rest moments) with
random unit vectors of the model's width, written straight into the table through
:class:`actionclip.collection.store.Store` (then its ANN index, as ``actionclip index`` builds past
50,000 rows), and recorded as built by a random checkpoint of ``--size``. The server runs in a child
process on a loopback port; clients are threads of this process (the stdlib client), one
connection per request. Two workloads per client count:

* **new queries**: every request a text the server has not seen (the text encoder runs each time);
* **repeated queries**: texts asked before (the server's query cache: only the table search runs).

Printed: requests/s and the p50/p95 latency a client sees. Numbers mean something only on a quiet
machine; docs/serve.md says where they were taken.

Usage::

    python benchmarks/bench_serve_search.py                         # 100,000 rows, random ViT-B/32
    python benchmarks/bench_serve_search.py --dry-run               # tiny sizes: checks that it runs
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WORDS = ["someone", "a person", "two people", "a child", "an athlete", "slipping", "running", "jumping",
         "dancing", "cooking", "on stairs", "in a kitchen", "outdoors", "with a ball", "on a bike", "slowly"]


def texts(count: int, seed: int) -> list[str]:
    import random

    rng = random.Random(seed)
    return [" ".join(rng.sample(WORDS, 4)) + f" #{seed}-{i}" for i in range(count)]


def synthesise(out: Path, checkpoint: Path, rows: int, seed: int = 0) -> None:
    """An index folder of ``rows`` random entries recorded as made by ``checkpoint``."""
    import numpy as np

    import actionclip
    from actionclip.collection.model_ref import describe
    from actionclip.collection.store import ANN_MIN_ROWS, Store

    model = actionclip.load(checkpoint, dtype="fp32", device="cpu")
    dim = int(model.encode_labels(["x"], ["{}"]).shape[-1])
    store = Store(out)
    rng = np.random.default_rng(seed)
    with store.writing():
        store.write_meta({"model": {**describe(model, checkpoint), "dtype": "fp32"}, "frames": model.num_frames,
                          "clips": 1, "crops": 1, "window": 4.0, "stride": 2.0, "grid": 0.25})
        chunk = 20_000
        for begin in range(0, rows, chunk):
            n = min(chunk, rows - begin)
            vectors = rng.standard_normal((n, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            ids = np.arange(begin, begin + n)
            videos = ids // 10
            kind = np.where(ids % 10 == 0, "video", "window")
            start = np.where(kind == "video", 0.0, (ids % 10 - 1) * 2.0)
            meta = {"path": [f"/videos/v{v:07d}.mp4" for v in videos], "video": [f"v{v:07d}.mp4" for v in videos],
                    "kind": kind.tolist(), "start": start.tolist(),
                    "end": np.where(kind == "video", 20.0, start + 4.0).tolist(),
                    "size": [1000] * n, "mtime_ns": [0] * n, "duration": [20.0] * n}
            store.add(meta, {"vector": vectors})
        store.finish(ann_min_rows=min(ANN_MIN_ROWS, rows))


def run_clients(url: str, queries: list[str], clients: int, k: int) -> dict[str, float]:
    from actionclip.serve.client import ServeClient

    client = ServeClient(url, timeout=600)

    def one(text: str) -> float:
        t0 = time.perf_counter()
        answer = client.search(text, k)
        assert answer["results"], answer
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as pool:
        latencies = sorted(pool.map(one, queries))
    wall = time.perf_counter() - t0
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
    return {"requests": len(queries), "rps": len(queries) / wall, "p50_ms": 1000 * statistics.median(latencies),
            "p95_ms": 1000 * p95}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=100_000, help="index entries (default 100,000)")
    p.add_argument("--size", default="B/32", help="random checkpoint size: tiny or B/32 (default)")
    p.add_argument("--clients", type=int, nargs="+", default=[8, 32], help="concurrent clients (default 8 32)")
    p.add_argument("--requests", type=int, default=256, help="requests per run (default 256)")
    p.add_argument("-k", type=int, default=10, help="results per kind (default 10)")
    p.add_argument("--workdir", type=Path, help="keep the checkpoint and index here (default: a temporary folder)")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes, to check that the benchmark runs")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = p.parse_args(argv)
    if args.dry_run:
        args.rows, args.size, args.clients, args.requests = 600, "tiny", [2, 4], 8

    from actionclip._dev.serving import ServerProcess
    from actionclip._dev.weights import write_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        checkpoint = work / f"random-{args.size.replace('/', '')}.pt"
        if not checkpoint.exists():
            write_checkpoint(checkpoint, size=args.size)
        index = work / f"synthetic-{args.rows}.index"
        if not (index / "index.json").exists():
            t0 = time.perf_counter()
            synthesise(index, checkpoint, args.rows)
            print(f"synthesised {args.rows} rows in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        figures: dict[str, dict] = {}
        env = {"ACTIONCLIP_SERVE_TOKEN": "", "ACTIONCLIP_CACHE": str(work / "cache")}
        with ServerProcess(["--index", index, "--device", "cpu", "--queue-size", "256"], env=env,
                           start_timeout=600) as server:
            run_clients(server.url, texts(4, seed=99), 2, args.k)  # warm-up: first query, first table scan
            for clients in args.clients:
                fresh = texts(args.requests, seed=clients)
                figures[f"{clients} clients, new queries"] = run_clients(server.url, fresh, clients, args.k)
                figures[f"{clients} clients, repeated queries"] = run_clients(server.url, fresh, clients, args.k)
        if "Traceback" in server.log:
            print(server.log, file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps({"rows": args.rows, "size": args.size, "cpus": os.cpu_count(), "figures": figures}))
    else:
        print(f"{args.rows} rows, random {args.size}, {os.cpu_count()} CPUs, {args.requests} requests a run")
        for name, f in figures.items():
            print(f"  {name:<28} {f['rps']:8.1f} req/s   p50 {f['p50_ms']:7.1f} ms   p95 {f['p95_ms']:7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
