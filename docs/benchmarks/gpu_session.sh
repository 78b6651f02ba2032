#!/usr/bin/env bash
# One device session's GPU measurements as one background job, so a row may outlast the device tool's
# 10-minute calls: start it with `setsid` after the MLX-CUDA install, then let each later call print
# /tmp/gpu/session.log and copy /tmp/gpu/out (the figures) back. Those calls also carry the demo GGUF in two
# halves (.carry-g1/part.aa, .carry-g2/part.ab): the capability and quality rows wait for
# /root/stash/demo.gguf.
#
#   setsid nohup bash docs/benchmarks/gpu_session.sh > /tmp/gpu/session.log 2>&1 &
#
# Order: the gemma4 E2B shape (issue 11's memory row: its peak is per process, so it runs beside the next row,
# with its own MLX_PTX_CACHE_DIR so two processes never write one cache file) and the SmolLM2-shape row with
# MLX-CUDA's kernels compiling; then the SmolLM2 row again, alone, for its time; issue 14's capability evals
# (HumanEval 164, GSM8K 500 on float / 4-bit / 3-bit) once the GGUF is there; the Llama-3-8B shape; issue 11's
# real-model quality table (a subset: the rows against mlx-lm). Outputs: /tmp/gpu/out/{e2b,cold,warm,...}.
# Session 6 ran E2B alone after two SmolLM2 rows: its GPTQ write stalled in the reference-LAPACK Cholesky (since
# fixed) and the budget ran out before the evals (quantize_gpu.md); session 7 lost half its budget to failed starts.
set -u
mkdir -p /tmp/gpu/out/e2b /tmp/gpu/out/cold /tmp/gpu/out/warm /tmp/gpu/out/llama8b /tmp/gpu/tree
cp -r core cli tui themes profiles docs /tmp/gpu/tree/        # a copy: later calls re-send the working tree
cd /tmp/gpu/tree || exit 1
source docs/benchmarks/device_env.sh .
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
stamp() { echo "#### $(date +%T) $*"; }
capability_done=0
capability() {     # once, when the demo GGUF has arrived
  [ "$capability_done" = 1 ] || [ ! -f /root/stash/demo.gguf ] && return
  capability_done=1
  stamp capability
  bash docs/benchmarks/capability_gpu.sh /root/stash/demo.gguf /tmp/gpu/out 256
}
stamp e2b in the background, smol with kernels compiling
(MLX_PTX_CACHE_DIR=/tmp/ptx-e2b OUT=/tmp/gpu/out/e2b bash docs/benchmarks/quantize_gpu.sh /tmp/g e2b 2>&1 \
  | sed -u 's/^/[e2b] /') &
e2b=$!
OUT=/tmp/gpu/out/cold bash docs/benchmarks/quantize_gpu.sh /tmp/g smol
stamp waiting for e2b; wait "$e2b"
stamp smol, kernels compiled
OUT=/tmp/gpu/out/warm bash docs/benchmarks/quantize_gpu.sh /tmp/g2 smol
capability
stamp llama8b
OUT=/tmp/gpu/out/llama8b bash docs/benchmarks/quantize_gpu.sh /tmp/g llama8b
stamp waiting for the GGUF
while [ ! -f /root/stash/demo.gguf ]; do sleep 5; done
capability
stamp quality table
python3 docs/benchmarks/real_model_quality.py --gguf /root/stash/demo.gguf --work /tmp/rmq --budget-s 1500 \
  --only "mlx-lm uniform-4" "temper 4.5 (default)" "temper 3.8 (default)" "mixed_3_6" "dynamic_quant" "GPTQ" \
  "AWQ" "mixed_4_6" "uniform-3" --out /tmp/gpu/out/real_model_quality_gpu.md
stamp done
