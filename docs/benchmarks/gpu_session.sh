#!/usr/bin/env bash
# One device session's GPU measurements as one background job, so a row may outlast the device tool's
# 10-minute calls: start it with `setsid` after the MLX-CUDA install, then let each later call print
# /tmp/gpu/session.log and copy /tmp/gpu/out (the figures) back. Those calls also carry the demo GGUF in three
# parts (.devc2/g.aa, .devc3/g.ab, .devc4/g.ac): the capability and quality rows wait for
# /root/stash/demo.gguf.
#
#   setsid nohup bash docs/benchmarks/gpu_session.sh [profile] > /tmp/gpu/session.log 2>&1 &
#
# Order (session 8's lesson: a row beside another is no time; session 10's: profile whole rows):
# 1. SmolLM2 once to fill MLX-CUDA's kernel cache where none was carried (MLX_PTX_CACHE_DIR, default
#    /tmp/mlx/<version>/ptx: session 9 brought its cache back as .devc2/ptx.tgz, install.sh unpacks it);
# 2. SmolLM2 for its time, py-spy on the whole row (out/smol/pyspy.txt: start, phases, save);
# 3. issue 14's capability evals (HumanEval 164, GSM8K 500 on float / 4-bit / 3-bit) once the GGUF is there
#    (waits up to 5 minutes for it); 4. the gemma4 E2B shape alone (issue 11's memory row); 5. the Llama-3-8B
#    shape, py-spy on the whole row; 6. issue 11's real-model quality table (a subset: the rows against mlx-lm).
#    Outputs: /tmp/gpu/out/{cold,smol,e2b,llama8b,...}. First of all gptq_forms.py --big: the 8B shapes with H's
#    factor on the host and on the device, same run.
# Session 6 ran out of budget in the E2B row (GPTQ factor in the reference LAPACK); session 7 got no machine;
# session 8 ran E2B beside SmolLM2 and timed neither; session 9 ran 1-5 with E2B stuck on its last tensor.
set -u
mkdir -p /tmp/gpu/out/e2b /tmp/gpu/out/cold /tmp/gpu/out/smol /tmp/gpu/out/llama8b /tmp/gpu/tree
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
spy=/tmp/spy/bin/py-spy       # from .devc2 (its install.sh)
[ -x "$spy" ] || echo "py-spy missing at $spy: the rows run unprofiled"
profiled() {   # profiled ROW SECONDS RATE: the row in the background, py-spy on its child from its start
  local row=$1 secs=$2 rate=$3 dir=/tmp/gpu/out/${1%%:*}
  OUT=$dir bash docs/benchmarks/quantize_gpu.sh "/tmp/g-${row%%:*}" "$row" &
  local job=$!
  if [ -x "$spy" ]; then
    local pid="" i
    for i in $(seq 1 1200); do
      pid=$(pgrep -f '[s]ensitivity_scale.py --child quantize' | head -1)
      [ -n "$pid" ] && break
      sleep 0.5
    done
    [ -n "$pid" ] && "$spy" record -d "$secs" -r "$rate" -p "$pid" -f raw --threads --idle -o "$dir/pyspy.txt" \
      > "$dir/pyspy.log" 2>&1
  fi
  wait "$job"
}
stage=${1:-all}     # profile: Llama-8B (8 layers), then SmolLM2, under py-spy --idle; no GGUF
if [ "$stage" = profile ]; then
  stamp llama8b with 8 of its 32 layers, profiled
  profiled llama8b:8 300 10
  stamp smol, profiled from its start
  profiled smol 90 20
  python3 -c "import time; t=time.perf_counter(); import transformers; print('transformers', transformers.__version__, round(time.perf_counter()-t, 2), 's')"
  python3 docs/benchmarks/kernel_check.py 2>&1 | tee /tmp/gpu/out/kernel_check.txt
  stamp done
  exit 0
fi
if [ "$stage" = leaves ]; then      # session 12's follow-up: SmolLM2 on this card, the device factor's leaf size
  stamp smol, twice
  OUT=/tmp/gpu/out/smol bash docs/benchmarks/quantize_gpu.sh /tmp/g smol smol
  stamp factor leaves
  python3 docs/benchmarks/factor_leaves.py 2>&1 | tee /tmp/gpu/out/factor_leaves.txt
  stamp "llama8b, 8 layers, the Fisher pass in parts (statistics capped at 1.5 GB: TEMPER_FISHER_ROOM_MB)"
  mkdir -p /tmp/gpu/out/l8-parts
  TEMPER_FISHER_ROOM_MB=1536 OUT=/tmp/gpu/out/l8-parts bash docs/benchmarks/quantize_gpu.sh /tmp/g llama8b:8
  stamp done
  exit 0
fi
if [ "$stage" = parts ]; then       # session 13: tables compacted before the first part, leaves of 256 rows
  stamp "llama8b, 8 layers: one part, then parts (TEMPER_FISHER_ROOM_MB=4096)"
  mkdir -p /tmp/gpu/out/l8-one /tmp/gpu/out/l8-p4 /tmp/gpu/out/llama8b
  OUT=/tmp/gpu/out/l8-one bash docs/benchmarks/quantize_gpu.sh /tmp/g llama8b:8
  TEMPER_FISHER_ROOM_MB=4096 OUT=/tmp/gpu/out/l8-p4 bash docs/benchmarks/quantize_gpu.sh /tmp/g llama8b:8
  stamp "llama8b, all 32 layers (the device factor's 256-row leaves)"
  rm -rf /tmp/g/llama8b-8 /tmp/g/q*
  OUT=/tmp/gpu/out/llama8b bash docs/benchmarks/quantize_gpu.sh /tmp/g llama8b
  stamp done
  exit 0
fi
if [ "$stage" = final ]; then       # clean rows (no profiler), then the quality rows the last table lacked
  stamp "mlx-lm's loader import, torch let in and kept out (core/startup.py)"
  for keep in 0 1; do python3 -c "import sys, time; t = time.perf_counter()
from temper.core.startup import keep_torch_out
$keep and keep_torch_out()
import mlx_lm.utils; print('kept out' if $keep else 'let in', round(time.perf_counter() - t, 2), 's', sorted(m for m in ('torch', 'sklearn', 'scipy', 'pandas') if sys.modules.get(m)))"; done
  stamp smol, twice: the first process of a machine pays its cold start
  OUT=/tmp/gpu/out/smol bash docs/benchmarks/quantize_gpu.sh /tmp/g smol smol
  stamp "llama8b, 8 layers: MLX's own cache limit (TEMPER_WRITE_CACHE_MB=0), then the write phase's 2 GB bound"
  mkdir -p /tmp/gpu/out/l8-unbounded /tmp/gpu/out/l8
  TEMPER_WRITE_CACHE_MB=0 OUT=/tmp/gpu/out/l8-unbounded bash docs/benchmarks/quantize_gpu.sh /tmp/g llama8b:8
  OUT=/tmp/gpu/out/l8 bash docs/benchmarks/quantize_gpu.sh /tmp/g llama8b:8
  stamp llama8b, all 32 layers, under py-spy --idle at 10 Hz
  profiled llama8b 400 10
  stamp waiting for the GGUF
  for i in $(seq 1 120); do [ -f /root/stash/demo.gguf ] && break; sleep 5; done
  stamp quality rows
  python3 docs/benchmarks/real_model_quality.py --gguf /root/stash/demo.gguf --work /tmp/rmq --budget-s 900 \
    --only "mlx-lm uniform-3" "AWQ" "mixed_4_6" "temper 3.5" "temper 5.0" \
    --merge docs/benchmarks/real_model_quality_gpu.json --out /tmp/gpu/out/real_model_quality_gpu.md
  stamp done
  exit 0
fi
stamp gptq forms with the 8B shapes: host factor against device factor
python3 docs/benchmarks/gptq_forms.py --big 2>&1 | tee /tmp/gpu/out/gptq_forms.txt
if [ -z "$(ls /tmp/mlx/*/ptx 2>/dev/null | head -1)" ]; then
  stamp smol, kernels compiling
  OUT=/tmp/gpu/out/cold bash docs/benchmarks/quantize_gpu.sh /tmp/g smol
fi
stamp smol, profiled from its start
mkdir -p /tmp/gpu/out/smol /tmp/gpu/out/llama8b
profiled smol 90 20
stamp waiting up to 300 s for the GGUF
for i in $(seq 1 60); do [ -f /root/stash/demo.gguf ] && break; sleep 5; done
capability
stamp e2b
OUT=/tmp/gpu/out/e2b bash docs/benchmarks/quantize_gpu.sh /tmp/g e2b
capability
stamp llama8b with 8 of its 32 layers, profiled
profiled llama8b:8 580 5
stamp waiting for the GGUF
while [ ! -f /root/stash/demo.gguf ]; do sleep 5; done
capability
stamp quality table
python3 docs/benchmarks/real_model_quality.py --gguf /root/stash/demo.gguf --work /tmp/rmq --budget-s 1500 \
  --only "mlx-lm uniform-4" "temper 4.5 (default)" "temper 3.8 (default)" "mixed_3_6" "dynamic_quant" "GPTQ" \
  "AWQ" "mixed_4_6" "uniform-3" --out /tmp/gpu/out/real_model_quality_gpu.md
stamp done
