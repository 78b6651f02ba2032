#!/usr/bin/env bash
# Here (the dev machine): stage what the GPU machine needs, in two carries of < 64 MiB each:
#   .devwheels/a: the first half of the mlx-cuda-13 wheel (and ptx.tgz, a kernel cache, where one was kept)
#   .devwheels/b: the second half, mlx and mlx-lm, install.sh (../shared/device/mlx-cuda.sh makes these), and
#                 extra/: the pure-Python (and pydantic-core) wheels temper imports that the machine lacks, py-spy.
#   bash docs/benchmarks/device_stage.sh [KERNEL_CACHE.tgz]
# Then, back to back (the machine is given back 30 s after a call):
#   1. run, carry [".devwheels/a"]:  mkdir -p /root/stash && cp .devwheels/a/* /root/stash/
#   2. run, carry [".devwheels/b"]:  bash docs/benchmarks/device_go.sh STAGE; bash docs/benchmarks/device_follow.sh 480
#   3. later calls, no carry:        bash docs/benchmarks/device_follow.sh 480
# A kernel cache comes back as $OUT/ptx.tgz from every device_follow.sh call: keep it for the next session
# (`device_stage.sh /path/ptx.tgz`); without one, a machine's first rows compile MLX-CUDA's kernels (minutes).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
bash ../shared/device/mlx-cuda.sh >/dev/null
mkdir -p .devwheels/b/extra
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .devwheels/b/extra \
  tomlkit "pydantic==2.14.4" "pydantic-core==2.50.5" annotated-types typing-inspection typing-extensions \
  rich markdown-it-py mdurl pygments py-spy 2>&1 | grep -v WARNING || true
[ -n "${1:-}" ] && cp "$1" .devwheels/a/ptx.tgz
du -sh .devwheels/a .devwheels/b
