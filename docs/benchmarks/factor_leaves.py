"""The device factor's leaf size on a GPU (factor_device.py): GPTQ's inverse Cholesky factor of the two H widths
of Llama-3-8B (4,096 and 14,336), its leaves of 128, 256 and 512 rows, same run; then one 512-row leaf on the
host (`cholesky_pair`: OpenBLAS `spotrf` + `strtri`) with NumPy's OpenBLAS on all its threads and on one.

Session 12's whole Llama-8B row spent 10.3 s of its 49 s write phase in the leaves' `strtri` (6.2 ms per 512-row
leaf, against 1-2 ms on the 2-core dev machine): this says whether smaller leaves or one thread cut it.

    python docs/benchmarks/factor_leaves.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def spd(n: int, seed: int):
    import mlx.core as mx

    scale = mx.array(np.random.default_rng(seed).uniform(0.1, 3.0, n).astype(np.float32))
    x = mx.random.normal((n + 256, n), key=mx.random.key(seed)) * scale
    h = x.T @ x
    mx.eval(h)
    return h


def timed(fn, repeat: int) -> tuple[float, object]:
    out, best = None, float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    import mlx.core as mx
    from temper.core.accel import lapack, numpy_blas
    from temper.core.quant import factor_device

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    print("device:", mx.default_device(), "| host LAPACK:", getattr(lapack.find("s"), "source", None))
    for n in (4096, 14336):
        h = spd(n, seed=n)
        lam = 0.01 * float(mx.mean(mx.diagonal(h)).item())
        ref = None
        for block in (512, 256, 128):
            def run(block=block, h=h, lam=lam):
                u = factor_device.upper_inverse_factor(h, lam, block=block)
                mx.eval(u)
                return u
            run()                                    # warm: kernels built, buffers sized
            secs, u = timed(run, args.repeat)
            if ref is None:
                ref = u
            gap = float(mx.linalg.norm(u - ref).item() / mx.linalg.norm(ref).item())
            print(f"n={n:6d} leaf {block:3d}: {secs * 1e3:8.1f} ms  ({-(-n // block)} leaves; vs leaf 512: {gap:.1e})",
                  flush=True)
    lib = numpy_blas.numpy_openblas_library()
    setter = next((getattr(lib, s) for s in numpy_blas.SETTERS if lib is not None and hasattr(lib, s)), None)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 1024)).astype(np.float32)
    a = x @ x.T / 512 + np.eye(512, dtype=np.float32)
    import os

    for threads in (os.cpu_count() or 1, 1):
        if setter is not None:
            setter.argtypes = [ctypes.c_int]
            setter(threads)
        secs, _ = timed(lambda: lapack.cholesky_pair(a, "s"), 20)
        print(f"host leaf 512, {threads:2d} OpenBLAS threads: spotrf + strtri {secs * 1e3:.2f} ms"
              f"{'' if setter else ' (no thread setter found: threads unchanged)'}", flush=True)

if __name__ == "__main__":
    main()
