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
# capability evals (HumanEval 164, GSM8K 500 on float / 4-bit / 3-bit), the gemma4 E2B shape, the Llama-3-8B
# shape, then issue 11's real-model quality table. (Session 6 ran E2B before the evals: its GPTQ write stalled in
# the reference-LAPACK Cholesky, since fixed, and the budget ran out before the evals: quantize_gpu.md.)
set -u
mkdir -p /tmp/gpu/out /tmp/gpu/tree
cp -r core cli tui themes profiles docs /tmp/gpu/tree/        # a copy: later calls re-send the working tree
cd /tmp/gpu/tree || exit 1
source docs/benchmarks/device_env.sh .
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
stamp() { echo "#### $(date +%T) $*"; }
stamp quantize rows
OUT=/tmp/gpu/out bash docs/benchmarks/quantize_gpu.sh /tmp/g smol smol
stamp waiting for the GGUF
while [ ! -f /root/stash/demo.gguf ]; do sleep 5; done
stamp capability
bash docs/benchmarks/capability_gpu.sh /root/stash/demo.gguf /tmp/gpu/out 256
stamp e2b
OUT=/tmp/gpu/out bash docs/benchmarks/quantize_gpu.sh /tmp/g e2b
stamp llama8b
OUT=/tmp/gpu/out bash docs/benchmarks/quantize_gpu.sh /tmp/g llama8b
stamp quality table
python3 docs/benchmarks/real_model_quality.py --gguf /root/stash/demo.gguf --work /tmp/rmq --budget-s 1500 \
  --out /tmp/gpu/out/real_model_quality_gpu.md
stamp done
