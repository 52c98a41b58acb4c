#!/usr/bin/env bash
# The one device run for issues 17 (NVDEC) and 18 (CUDA encoders): under 8 minutes on an H200 with
# 16 cores. Run there from the repository root with .device/ carried (benchmarks/device_prepare.sh
# fills it); tables and logs go to $OUT. docs/speed.md, "To run on a GPU host", has the command.
#   bash benchmarks/device_run.sh             the measurements
#   bash benchmarks/device_run.sh --dry-run   the same steps on CPU with tiny sizes (the tests run it)
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0; [ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ -d .device/whl ] && [ "$DRY" = 0 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .device/whl/*.whl || exit 1
  export PYTHONPATH=$PYTHONPATH:/tmp/site:$PWD/.device/site
fi
{
  echo "## environment"
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "no nvidia-smi"
  echo "NVDEC/NVENC driver libraries: $( (ldconfig -p 2>/dev/null; ls /usr/local/nvidia/lib64 2>/dev/null) \
        | grep -oE 'libnv(cuvid|idia-encode)\.so[.0-9]*' | sort -u | tr '\n' ' ')"
  python3 -c "import torch, av; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'PyAV', av.__version__)"
  python3 -c "import ftfy, regex, transformers, safetensors; print('transformers', transformers.__version__)"
  python3 -c "from actionclip.video import nvdec; [print(b, nvdec.availability(b) or 'available') for b in nvdec.BACKENDS]"
} 2>&1 | tee "$OUT/env.txt"
if [ "$DRY" = 1 ]; then
  CUDA=(--device cpu --model tiny --dry-run --dtypes bf16 --batches 1,2 --xclip-batches 1 --compile-mode '')
  NVDEC=(--dry-run)
else
  # compile mode "default": max-autotune takes minutes per shape, more than this run has.
  CUDA=(--model B/32 --dtypes fp16,bf16 --batches 1,256 --xclip B/32 --xclip-batches 1,64 --repeats 10
        --compile-mode default)
  NVDEC=(--clips .device/clips --processes 1,2,4,8,16 --sessions 1,4,7,14 --nvdec-videos 480)
fi
echo "## GPU tests (skipped on CPU: graph replay vs eager, NVDEC frames vs the CPU path's)" | tee "$OUT/tests.log"
if [ "$DRY" = 0 ]; then
  timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_policy.py tests/test_nvdec.py 2>&1 \
    | tail -25 | tee -a "$OUT/tests.log"
fi
echo "## CUDA encoders (issue 18)" | tee "$OUT/cuda.log"
timeout 240 python3 benchmarks/bench_cuda.py "${CUDA[@]}" --out "$OUT/cuda.md" 2>&1 | tee -a "$OUT/cuda.log"
echo "## NVDEC and CPU decoding (issue 17)" | tee "$OUT/nvdec.log"
timeout 150 python3 benchmarks/bench_nvdec.py "${NVDEC[@]}" --out "$OUT/nvdec.md" 2>&1 | tee -a "$OUT/nvdec.log"
echo "## tables"
cat "$OUT/cuda.md" "$OUT/nvdec.md" 2>/dev/null
