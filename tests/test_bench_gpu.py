"""The decoding benchmarks cannot rot: bench_gpu.py's CPU dry run prints every section (decode scaling by
worker count, encoder alone, end to end against the decode rate), bench_pipeline.py's every table."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_gpu.py"


def _script():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_worker_counts_double_up_to_the_most():
    counts = _script().worker_counts
    assert counts(1) == [1]
    assert counts(2) == [1, 2]
    assert counts(12) == [1, 2, 4, 8, 12]
    assert counts(16) == [1, 2, 4, 8, 16]


@pytest.mark.heavy
def test_dry_run_on_cpu(tmp_path):
    from actionclip._dev.videos import make_test_video

    for i in range(3):
        make_test_video(tmp_path / f"v{i}.mp4", seconds=1, size=(64, 48))
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--model", "tiny", "--videos", "8",
                           "--workers", "2", "--batches", "2", "--dtypes", "fp32", "--repeats", "1",
                           "--e2e-batch", "4", "--clips", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    rows = re.findall(r"decode \+ sample \+ crop, +(\d+) worker processes: +([\d.]+) videos/s", out)
    assert [int(n) for n, _ in rows] == [1, 2] and all(float(r) > 0 for _, r in rows)
    assert re.search(r"batch +2 eager +: +[\d.]+ videos/s", out)
    end = re.search(r"end to end \(2 worker processes .*\): +([\d.]+) videos/s = (\d+)% of the decode-only rate "
                    r"\(([\d.]+)\); encoder alone ([\d.]+) videos/s", out)
    assert end, out
    assert float(end.group(1)) > 0 and float(end.group(3)) == float(rows[-1][1])


@pytest.mark.heavy
def test_pipeline_benchmark_dry_run():
    script = SCRIPT.parent / "bench_pipeline.py"
    done = subprocess.run([sys.executable, str(script), "--all", "--dry-run", "--workers", "2"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"\| 2 \| [\d.]+ \| [\d.]+x \| [\d.]+ \| [\d.]+x \|", out), out
    assert re.search(r"\| this checkout \| [\d.]+ \|", out), out


def test_decode_source_rows_alone_and_with_the_workers(tiny_checkpoint, tmp_path, capsys):
    """The NVDEC rows' logic, with a decode source that takes the .mp4 files in a thread (the real one
    needs a GPU): decode_sources gives nothing for a CPU model, and each source prints its row."""
    import concurrent.futures as cf

    import actionclip
    from actionclip._dev.videos import make_test_video
    from actionclip.pipeline import PrepareViews

    tiny_model = actionclip.load(tiny_checkpoint, device="cpu", dtype="fp32")  # on the CPU on any host
    bench = _script()
    assert bench.decode_sources(tiny_model) == []
    prepare = PrepareViews(tiny_model.views, tiny_model.num_frames)

    class Mp4InAThread:
        capacity = 2

        def __init__(self):
            self.pool = cf.ThreadPoolExecutor(1)
            self.taken = 0

        def accepts(self, item):
            return str(item).endswith(".mp4")

        def submit(self, item):
            self.taken += 1
            return self.pool.submit(prepare, item)

        def close(self):
            self.pool.shutdown()

    videos = [make_test_video(tmp_path / f"v{i}.mp4", seconds=1, size=(64, 48)) for i in range(2)]
    videos.append(make_test_video(tmp_path / "u.avi", seconds=1, codec="mpeg4"))
    source = Mp4InAThread()
    try:
        rate = bench.decode_scaling(tiny_model, videos * 2, 1, [("stand-in", [source])])
    finally:
        source.close()
    out = capsys.readouterr().out
    row = re.search(r"decode \+ sample \+ crop, stand-in: +([\d.]+) videos/s alone \(the 4 of 6 videos it takes\), "
                    r"+([\d.]+) videos/s with 1 worker processes \(all 6\)", out)
    assert row, out
    assert float(row.group(1)) > 0 and float(row.group(2)) > 0 and rate >= float(row.group(2)) - 0.05  # printed to 0.1
    assert source.taken >= 4 + 1  # alone: its 4; with the worker: at least one more
