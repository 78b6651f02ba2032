#!/usr/bin/env bash
# Issue 11's GPU rows on the device machine: the DEFAULT `temper quantize --bpw 4.5` on random-weight models of
# real shapes, each row in its own process (docs/benchmarks/sensitivity_scale.py --child quantize: fresh
# TEMPER_HOME, peak MLX memory and RSS recorded), with a line every 15 s while it runs (job phase and progress
# from the job record, GPU memory in use from nvidia-smi) so a row cut off by a time limit still says where it was.
#
#   source docs/benchmarks/device_env.sh . && bash docs/benchmarks/quantize_gpu.sh WORK ROW[:N]...
#
# ROW: warm (tiny llama: compiles MLX-CUDA's kernels, a first-use cost), smol (SmolLM2-135M shape), e2b (gemma4
# E2B shape, 9.3 GB bf16), llama8b (Llama-3-8B shape; llama8b:8 keeps 8 of its 32 layers). A row named twice runs
# twice (the second finds its kernels compiled). Each row's stats JSON and log go to $OUT when it is set.
set -u
work=${1:?usage: quantize_gpu.sh WORK ROW...}; shift
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
n=0
for spec in "$@"; do
  n=$((n + 1))
  row=${spec%%:*}; layers=${spec#*:}; [ "$layers" = "$spec" ] && layers=32
  src=$(python3 - "$work" "$row" "$layers" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "docs/benchmarks")
import sensitivity_scale as s
work, row, layers = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
shape = {"warm": s.TINY, "smol": s.SMOL, "e2b": s.E2B, "llama8b": dict(s.LLAMA8B, num_hidden_layers=layers)}[row]
print(s.build(work / f"{row}-{layers}", shape))
PY
  ) || { echo "$row: could not build the model"; continue; }
  out="$work/q$n-$row"; stats="$out.stats.json"; home="$out-home"
  rm -rf "$out" "$home" "$stats"; mkdir -p "$home"
  echo "== row $n: $row ($src, $(du -sh "$src" | cut -f1)) $(date +%T)"
  TEMPER_HOME="$home" python3 "$here/sensitivity_scale.py" --child quantize "$src" "$out" "$stats" >"$out.log" 2>&1 &
  pid=$!
  t0=$(date +%s)
  while kill -0 "$pid" 2>/dev/null; do
    sleep 15
    rec=$(ls -t "$home"/data/jobs/*.json 2>/dev/null | grep -v sensitivity | head -1)
    phase=$([ -n "$rec" ] && python3 -c "import json,sys; d=json.load(open(sys.argv[1])); p=d.get('progress',{}); ph=d.get('phase'); print(ph, p.get(ph))" "$rec" 2>/dev/null)
    gpu=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader 2>/dev/null)
    echo "  $(( $(date +%s) - t0 )) s: ${phase:-starting} | GPU in use ${gpu:-?}"
  done
  wait "$pid"; rc=$?
  if [ -f "$stats" ]; then
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(f\"  done rc=$rc: wall {d['wall']:.1f} s, CPU {d['cpu']:.1f} s, peak MLX {d['peak_mlx']/1e9:.2f} GB, peak RSS {d['peak_rss']/1e9:.2f} GB, bpw {d.get('bpw')}, mode {d.get('mode')}\"); print('  phases', {k: round(v, 1) for k, v in d['phases'].items()}); print('  active MLX GB by phase (sampled)', {k: round(v / 1e9, 2) for k, v in d.get('active_mlx_by_phase', {}).items()})" "$stats"
  else
    echo "  failed rc=$rc:"; tail -5 "$out.log"
  fi
  [ -n "${OUT:-}" ] && cp "$stats" "$OUT/$row-$n.stats.json" 2>/dev/null
  [ -n "${OUT:-}" ] && tail -c 200000 "$out.log" > "$OUT/$row-$n.log"
done
