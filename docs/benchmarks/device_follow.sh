#!/usr/bin/env bash
# On the GPU machine: wait up to SECONDS (default 480) for gpu_session.sh to print "#### ... done", then print its
# log and pack the figures ($OUT/out.tgz) and MLX-CUDA's kernel cache ($OUT/ptx.tgz, for the next session).
secs=${1:-480}
end=$(( $(date +%s) + secs ))
while [ "$(date +%s)" -lt "$end" ]; do
  grep -q '^#### .* done$' /tmp/gpu/session.log 2>/dev/null && break
  sleep 5
done
cat /tmp/gpu/session.log
tar -C /tmp/gpu -czf "$OUT/out.tgz" out 2>/dev/null
if [ -d /tmp/mlx ]; then tar -C /tmp -czf "$OUT/ptx.tgz" mlx 2>/dev/null; fi
cp /tmp/gpu/session.log "$OUT/session.log" 2>/dev/null
ls -la "$OUT"
