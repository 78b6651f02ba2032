#!/usr/bin/env bash
# Peak RSS by phase of one default `temper quantize --bpw 4.5`: the job's phase and progress (from its job
# record) beside the process's RSS and high-water mark (VmRSS / VmHWM), every 5 s. For issue 11's 262k-vocabulary
# memory goal (docs/benchmarks/sensitivity_scale.md); the model comes from `sensitivity_scale.py cpu --only vocab`.
#
#   bash docs/benchmarks/rss_by_phase.sh HOME SRC OUT > log      # HOME: a fresh TEMPER_HOME (emptied)
home=$1; src=$2; out=$3
rm -rf "$home" "$out"; mkdir -p "$home"
TEMPER_HOME=$home ${TEMPER:-temper} quantize "$src" --bpw 4.5 -o "$out" --force > "$out.cli.log" 2>&1 &
sleep 3
pid=$(pgrep -n -f "quantize $src")
while kill -0 $pid 2>/dev/null; do
  rec=$(ls -t $home/data/jobs/*.json 2>/dev/null | grep -v sensitivity | head -1)
  ph=$([ -n "$rec" ] && python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d.get('phase'), d.get('progress',{}).get(d.get('phase')))" $rec 2>/dev/null)
  echo "$(date +%T) $ph $(grep -E 'VmRSS|VmHWM' /proc/$pid/status | tr -s ' ' | tr '\n' ' ')"
  sleep 5
done
