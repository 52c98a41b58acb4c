#!/usr/bin/env bash
# Run HERE (a machine with PyPI) before a device run: fills .device/ (in .gitignore, carried by the
# device tool) with what the H200 image lacks: PyAV's wheel, PyNvVideoCodec unpacked and trimmed to
# fit the 64 MiB a call may carry, and the shared clips NVDEC decodes plus a few it does not.
# Usage: bash benchmarks/device_prepare.sh [SHARED_DATA]   (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
D=.device
rm -rf "$D" && mkdir -p "$D/whl" "$D/site" "$D/clips"
# The device runs Python 3.12 (KINDS.md); pip matches each manylinux tag exactly.
PLAT=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q "${PLAT[@]}" -d "$D/whl" av==18.1.0
# The tokenizer's text clean-up (pure Python; the image has regex but not these).
python3 -m pip download -q --no-deps --only-binary=:all: -d "$D/whl" "ftfy>=6.3" wcwidth
python3 -m pip install -q "${PLAT[@]}" --target "$D/site" pynvvideocodec==2.2.4
# Trim: FFmpeg's source tarball, samples and benchmarks, the CUDA 12 module (the device's driver is
# CUDA 13), and the duplicate copies of the two libraries (their SONAMEs are what the module loads).
find "$D/site" -name '*.tar.xz' -delete
rm -rf "$D/site/samples" "$D/site/benchmarks" "$D/site"/PyNvVideoCodec/PyNvVideoCodec_121*.so
rm -f "$D/site/PyNvVideoCodec/libavformat.so" "$D/site"/PyNvVideoCodec/libavformat.so.63.* \
      "$D/site/PyNvVideoCodec/libavutil.so" "$D/site"/PyNvVideoCodec/libavutil.so.61.*
# Clips: every one NVDEC takes (H.264 here), and the ten smallest it leaves to the CPU.
PYTHONPATH=$PWD python3 - "$DATA/clips" "$D/clips" <<'PY'
import shutil, sys
from pathlib import Path
from actionclip.video import nvdec
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
clips = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() != ".csv")
take = [p for p in clips if nvdec.accepts(p)]
take += sorted((p for p in clips if p not in take), key=lambda p: p.stat().st_size)[:10]
for p in take:
    (dst / p.parent.name).mkdir(exist_ok=True)
    shutil.copy2(p, dst / p.parent.name / p.name)
print(f"{len(take)} clips ({sum(p.stat().st_size for p in take) / 2**20:.1f} MiB) of {len(clips)}")
PY
du -sh "$D"/* "$D"
