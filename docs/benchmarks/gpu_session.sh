#!/usr/bin/env bash
# One device session's GPU measurements as one background job, so a row may outlast the device tool's
# 10-minute calls: start it with `setsid` after the MLX-CUDA install, then let each later call print
# /tmp/gpu/session.log and copy /tmp/gpu/out (the figures) back. Those calls also carry the demo GGUF in two
# halves (.carry-g1/part.aa, .carry-g2/part.ab): the capability and quality rows wait for
# /root/stash/demo.gguf.
#
#   setsid nohup bash docs/benchmarks/gpu_session.sh > /tmp/gpu/session.log 2>&1 &
#
# Order: issue 11's SmolLM2-shape quantize row twice (the second with MLX-CUDA's kernels compiled), issue 14's
# capability evals (HumanEval 164, GSM8K 500 on float / 4-bit / 3-bit) as soon as the GGUF is there, the gemma4
# E2B shape, the Llama-3-8B shape, then issue 11's real-model quality table (a subset: the rows against mlx-lm).
# The two big random models are built in the background while the first row compiles its kernels (their own
# MLX_PTX_CACHE_DIR, so two processes never write one cache file). Session 6 ran E2B first: its GPTQ write stalled
# in the reference-LAPACK Cholesky (since fixed) and the budget ran out before the evals (quantize_gpu.md).
set -u
mkdir -p /tmp/gpu/out /tmp/gpu/tree
cp -r core cli tui themes profiles docs /tmp/gpu/tree/        # a copy: later calls re-send the working tree
cd /tmp/gpu/tree || exit 1
source docs/benchmarks/device_env.sh .
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
stamp() { echo "#### $(date +%T) $*"; }
stamp building e2b and llama8b in the background
(MLX_PTX_CACHE_DIR=/tmp/ptx-build python3 - > /tmp/gpu/out/build.log 2>&1 <<'PY'
import sys, time
from pathlib import Path
sys.path.insert(0, "docs/benchmarks")
import sensitivity_scale as s
for row, shape in (("e2b", s.E2B), ("llama8b", dict(s.LLAMA8B, num_hidden_layers=32))):
    t = time.time()
    s.build(Path("/tmp/g") / f"{row}-32", shape)
    print(row, "built in", round(time.time() - t, 1), "s", flush=True)
PY
) &
builder=$!
capability_done=0
capability() {     # once, when the demo GGUF has arrived
  [ "$capability_done" = 1 ] || [ ! -f /root/stash/demo.gguf ] && return
  capability_done=1
  stamp capability
  bash docs/benchmarks/capability_gpu.sh /root/stash/demo.gguf /tmp/gpu/out 256
}
stamp quantize rows
OUT=/tmp/gpu/out bash docs/benchmarks/quantize_gpu.sh /tmp/g smol smol
capability
stamp waiting for the e2b model; cat /tmp/gpu/out/build.log
while [ ! -f /tmp/g/e2b-32/config.json ] && kill -0 "$builder" 2>/dev/null; do sleep 2; done
stamp e2b
OUT=/tmp/gpu/out bash docs/benchmarks/quantize_gpu.sh /tmp/g e2b
capability
stamp waiting for the builder; wait "$builder"; cat /tmp/gpu/out/build.log
stamp llama8b
OUT=/tmp/gpu/out bash docs/benchmarks/quantize_gpu.sh /tmp/g llama8b
stamp waiting for the GGUF
while [ ! -f /root/stash/demo.gguf ]; do sleep 5; done
capability
stamp quality table
python3 docs/benchmarks/real_model_quality.py --gguf /root/stash/demo.gguf --work /tmp/rmq --budget-s 1500 \
  --only "mlx-lm uniform-4" "temper 4.5 (default)" "temper 3.8 (default)" "mixed_3_6" "dynamic_quant" "GPTQ" \
  "AWQ" "mixed_4_6" "uniform-3" --out /tmp/gpu/out/real_model_quality_gpu.md
stamp done
