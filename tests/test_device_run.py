"""The prepared device run (benchmarks/device_run.sh: bench_cuda.py, then bench_nvdec.py) runs its
dry run on CPU, so that it cannot rot before a GPU host runs it (docs/speed.md, "To run on a GPU
host"). What is checked: every step runs, writes its table, and says plainly what it could not
measure here (no CUDA device: NVDEC not used), rather than failing or inventing figures."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and timeout")
def test_device_run_dry_run_writes_both_tables(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHONPATH=str(REPO))
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "device_run.sh"), "--dry-run"], capture_output=True,
                          text=True, timeout=300, cwd=REPO, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    env_txt = (tmp_path / "env.txt").read_text()
    assert "torch" in env_txt and "pynvvideocodec" in env_txt
    cuda_md = (tmp_path / "cuda.md").read_text()
    assert "| ActionCLIP tiny | bf16 | video | 1 | eager |" in cuda_md
    assert "| ActionCLIP tiny | bf16 | video | 1 | hf-transformers |" in cuda_md
    assert "| text | bf16 | text |" in cuda_md and "| X-CLIP tiny | bf16 | video | 1 | eager |" in cuda_md
    assert "within tolerance of fp32" in cuda_md and "NOT met" not in cuda_md
    nvdec_md = (tmp_path / "nvdec.md").read_text()
    assert "| cpu | 1 processes |" in nvdec_md and "| cpu | 2 processes |" in nvdec_md
    assert "| routing | 1 of 2 clips to NVDEC |" in nvdec_md  # the generated H.264 clip, not the MPEG-4 AVI
    assert "NVDEC not used (no CUDA device)" in nvdec_md
