"""GPTQ's column loop in its three forms on one machine, same run: the NumPy form (`rounding.gptq`), the
device step form (`rounding_device`, compiled 16-column steps: TEMPER_GPTQ_KERNEL=0) and the device kernel
form (`column_kernel`, CUDA only), the last also with H's factor on the device (`factor_device`, for H at least
4096 wide: the 8B shapes), on the weight shapes of one SmolLM2-135M block and of Llama-3-8B's
largest Linears, random weights and a random positive-definite H.

Prints, per shape and form: seconds for one call (the second; the first builds kernels), the ratio to the
NumPy form (or the step form where NumPy is skipped), and the agreement of the integers with the reference
form (share equal) and the output error Δᵀ·H·Δ against it. Act-order on, clip search on, 4 bits, group 64.

    python docs/benchmarks/gptq_forms.py [--big] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SMOL = [("smol q+k+v", 960, 576), ("smol o", 576, 576), ("smol gate+up", 3072, 576), ("smol down", 576, 1536)]
BIG = [("8B q+k+v", 6144, 4096), ("8B down", 4096, 14336)]


def problem(rows: int, cols: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    import mlx.core as mx

    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((rows, cols)) * rng.uniform(0.2, 2.0, (rows, 1))).astype(np.float32) * 0.02
    scale = mx.array(rng.uniform(0.1, 3.0, cols).astype(np.float32))
    x = mx.random.normal((cols + 256, cols), key=mx.random.key(seed)) * scale
    h = x.T @ x
    return w, np.array(h.astype(mx.float32))


def output_error(w: np.ndarray, h: np.ndarray, q: np.ndarray, s: np.ndarray, b: np.ndarray, gs: int) -> float:
    rows, cols = w.shape
    deq = (q.reshape(rows, cols // gs, gs) * s[..., None] + b[..., None]).reshape(rows, cols)
    d = (deq - w).astype(np.float64)
    return float(np.einsum("rc,rc->", d @ h.astype(np.float64), d))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", action="store_true", help="also Llama-3-8B shapes (NumPy form skipped there)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=64)
    args = ap.parse_args()
    import mlx.core as mx
    from temper.core.quant import column_kernel, factor_device
    from temper.core.quant.rounding import gptq
    from temper.core.quant.rounding_device import gptq_on_device, on_accelerator

    print(f"MLX {mx.__version__} on {mx.default_device()}; accelerator: {on_accelerator()}; "
          f"CUDA kernel available: {column_kernel.available()}", flush=True)

    def timed(fn):
        out, best = None, float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t)
        return out, best

    forms = [("numpy", None)]
    if on_accelerator():
        forms += [("device steps", "0"), ("device kernel", "1"), ("kernel+gpu factor", "1")]
    total: dict[str, float] = {}
    for i, (name, rows, cols) in enumerate(SMOL + (BIG if args.big else [])):
        w, h = problem(rows, cols, seed=i)
        ref = ref_err = None
        for form, flag in forms:
            if form == "numpy" and rows * cols > 4_000_000:
                continue
            if flag is not None:
                os.environ[column_kernel.ENV] = flag
            os.environ[factor_device.ENV] = "1" if form == "kernel+gpu factor" else "0"
            if form == "device kernel" and not column_kernel.available():
                print(f"  {name:14s} {form:14s} not run: {column_kernel.failure or 'no CUDA'}", flush=True)
                continue
            fn = gptq if form == "numpy" else gptq_on_device
            out, sec = timed(lambda fn=fn, w=w, h=h: fn(w, h, args.bits, args.group_size, mx.bfloat16, act_order=True))
            if form == "device kernel" and column_kernel.failure:
                print(f"  kernel failed, step form ran: {column_kernel.failure}", flush=True)
            err = output_error(w, h, *out, args.group_size)
            if ref is None:
                ref, ref_err, ref_sec, ref_form = out, err, sec, form
                vs = "reference"
            else:
                vs = (f"{ref_sec / sec:6.1f}x faster than {ref_form}; integers equal {np.mean(out[0] == ref[0]):.4f}; "
                      f"output error {err / ref_err:.4f}x")
            if name.startswith("smol"):
                total[form] = total.get(form, 0.0) + sec
            print(f"  {name:14s} {form:14s} {sec:8.3f} s  {vs}", flush=True)
    print("SmolLM2's 30 blocks (4 calls each, as above), seconds by form:",
          {k: round(v * 30, 1) for k, v in total.items()}, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
