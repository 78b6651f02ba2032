#!/usr/bin/env bash
# On the GPU machine (call 2 of device_stage.sh): install MLX-CUDA and the extra wheels, unpack a carried kernel
# cache, start `gpu_session.sh STAGE` in the background (setsid: it outlives the call); device_follow.sh reads it.
set -u
stage=${1:-leaves}
bash .devwheels/b/install.sh || exit 1
if [ -f /root/stash/ptx.tgz ]; then tar -C /tmp -xzf /root/stash/ptx.tgz && echo "kernel cache: $(ls /tmp/mlx/*/ptx | wc -l) files"; fi
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .devwheels/b/extra/*.whl 2>&1 | grep -v "already exists" | tail -2
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/spy .devwheels/b/extra/py_spy*.whl 2>&1 | tail -2
mkdir -p /tmp/gpu
(setsid nohup bash docs/benchmarks/gpu_session.sh "$stage" > /tmp/gpu/session.log 2>&1 &)
sleep 2
