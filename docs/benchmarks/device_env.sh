# Source on the GPU machine (device tool) after .devwheels/b/install.sh: makes `import temper.core`,
# `temper.cli` work from a source tree without installing it, on top of the MLX-CUDA site in /tmp/site.
#   source docs/benchmarks/device_env.sh [TREE]     # TREE: the repo root or a carried copy (default: .)
tree=$(cd "${1:-.}" && pwd)
rm -rf /tmp/shim && mkdir -p /tmp/shim/temper
for part in core cli tui themes profiles; do [ -d "$tree/$part" ] && ln -s "$tree/$part" "/tmp/shim/temper/$part"; done
: > /tmp/shim/temper/__init__.py
export PYTHONPATH=/tmp/site:/tmp/shim PYTHONUNBUFFERED=1
# MLX's default kernel cache, where install.sh unpacks the carried one (temper would otherwise use ~/.cache/temper)
MLX_PTX_CACHE_DIR=/tmp/mlx/$(python3 -c 'import importlib.metadata as m; print(m.version("mlx"))')/ptx
export MLX_PTX_CACHE_DIR
python3 -c 'import mlx.core as mx, temper.core; print("device env:", mx.default_device(), "temper from", "'"$tree"'")'
