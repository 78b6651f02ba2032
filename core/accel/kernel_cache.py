"""A durable home for the kernels MLX's CUDA backend compiles.

MLX-CUDA compiles many kernels with NVRTC at their first use and keeps the results in `MLX_PTX_CACHE_DIR`,
by default `/tmp/mlx/<version>/ptx`: cleared wherever /tmp is at a reboot, and refused to a second user
when the first one created it. On an H200 (2026-12-07, docs/benchmarks/quantize_gpu.md) the first SmolLM2
quantize of a fresh machine took 457 s against 54 s once the kernels were cached, and the first quantized
model's capability evals waited ~2 minutes for them. So where MLX is a CUDA build and the user has not
chosen a folder, temper points it at its own cache folder, one per MLX version (kernels of one version are
not another's). MLX reads the variable once, at its first compile: the engine sets it as it starts, before
any MLX work.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from importlib import metadata
from pathlib import Path

ENV = "MLX_PTX_CACHE_DIR"


def folder(environ: MutableMapping[str, str] | None = None) -> Path:
    """temper's kernel folder for the installed MLX: $XDG_CACHE_HOME/temper/mlx-cuda-kernels/<version>."""
    environ = os.environ if environ is None else environ
    try:
        version = metadata.version("mlx")
    except metadata.PackageNotFoundError:
        version = "unknown"
    cache = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "temper" / "mlx-cuda-kernels" / version


def persist(environ: MutableMapping[str, str] | None = None, *, cuda: bool | None = None) -> Path | None:
    """Set MLX_PTX_CACHE_DIR to `folder()` on a CUDA build of MLX when it is unset; the folder set, or None
    (not CUDA, the user's own choice kept, or the folder cannot be made: MLX's default then stands)."""
    from .blas import cuda_build

    environ = os.environ if environ is None else environ
    if environ.get(ENV) or not (cuda_build() if cuda is None else cuda):
        return None
    path = folder(environ)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    environ[ENV] = str(path)
    return path
