"""GPTQ's column loop as one GPU kernel per run of columns (MLX `mx.fast.cuda_kernel` / `metal_kernel`).

GPTQ never mixes rows: row r's columns are rounded in order, and each rounding error e (divided by U's
diagonal) moves r's later columns by -U[k, m]·e. So one thread per row can walk a whole run of N columns
(a 128-column block, or one group) with the run held in its own local array, reading the run's block of U
(N×N, the same addresses for every thread: broadcast reads). The run's length and the width's top integer
are read at run time, so a process compiles one kernel per local-array size (`WIDTHS`), not one per
(columns, bits): each build is seconds of NVRTC (session 11's SmolLM2 row spent 27 of its 36 write-phase
seconds compiling a dozen). That is one launch where the step form
(rounding_device.steps) makes hundreds of small ones per 16 columns. It writes the integers and the
errors; the caller moves the errors onto the later columns with one matmul.

On MLX's CUDA and Metal backends, the same body in each dialect. Before its first use in a process the kernel
is checked against `reference` (its arithmetic in NumPy) on a small fixed problem, and each new width is built
and run at once: if either fails, the kernel is off for the process and `failure` says why; the step form
takes over, so a compiler or driver quirk costs time, never a wrong result. `TEMPER_GPTQ_KERNEL=0` turns it
off (the benchmark's A/B: docs/benchmarks/gptq_forms.py).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import numpy as np

ENV = "TEMPER_GPTQ_KERNEL"
MAX_RUN = 256                 # columns a thread holds (its local array)
WIDTHS = (128, MAX_RUN)       # the compiled local-array sizes: a run of n columns uses the first ≥ n
THREADS = 32                  # threads per group (one warp): a slice of 2,340 rows is 74 groups, so it spreads
                              # over 74 of an H100's 132 multiprocessors, not 19 (each thread's work is serial)

_BODY = """
    const int n = wt_shape[0];
    const int rows = wt_shape[1];
    const int r = {row};
    if (r >= rows) return;
    const float top = (float)tp[0];
    float acc[N];
    #pragma unroll
    for (int k = 0; k < N; ++k) acc[k] = k < n ? wt[k * rows + r] : 0.0f;
    #pragma unroll
    for (int k = 0; k < N; ++k) {{
        if (k >= n) break;
        const float x = acc[k];
        const float sk = sc[k * rows + r];
        const float bk = bi[k * rows + r];
        const float q = {clamp}({rint}((x - bk) / sk), 0.0f, top);
        const float e = (x - (sk * q + bk)) / uf[k * n + k];
        q_out[k * rows + r] = (uint8_t)q;
        e_out[k * rows + r] = e;
        #pragma unroll
        for (int m = k + 1; m < N; ++m) if (m < n) acc[m] -= uf[k * n + m] * e;
    }}
"""
SOURCE = {
    "cuda": _BODY.format(row="blockIdx.x * blockDim.x + threadIdx.x", clamp="clampf", rint="rintf"),
    "metal": _BODY.format(row="(int)thread_position_in_grid.x", clamp="metal::clamp", rint="metal::rint"),
}
HEADER = {"cuda": "__device__ inline float clampf(float x, float lo, float hi) { return fminf(fmaxf(x, lo), hi); }\n",
          "metal": ""}

failure: str | None = None    # why the kernel was turned off in this process, if it was
_checked: set[int] = set()    # widths built and run in this process


def backend() -> str | None:
    """'cuda' or 'metal' where MLX's default device is that GPU, else None."""
    import mlx.core as mx

    if mx.default_device().type != mx.gpu:
        return None
    for name in ("cuda", "metal"):
        module = getattr(mx, name, None)
        if module is not None and module.is_available():
            return name
    return None


def available() -> bool:
    """Whether runs go through the kernel: a CUDA or Metal default device, not turned off, not failed."""
    if failure is not None or os.environ.get(ENV, "") == "0":
        return False
    return backend() is not None


@lru_cache(maxsize=2)
def _kernel(name: str) -> Any:
    import mlx.core as mx

    make = mx.fast.cuda_kernel if name == "cuda" else mx.fast.metal_kernel
    return make(name="temper_gptq_run", input_names=["wt", "sc", "bi", "uf", "tp"], output_names=["q_out", "e_out"],
                source=SOURCE[name], header=HEADER[name])


@lru_cache(maxsize=16)
def _top(bits: int) -> Any:
    """The width's largest integer as a one-element device array (made once per width, not per launch)."""
    import mlx.core as mx

    top = mx.array([2 ** bits - 1], dtype=mx.int32)
    mx.eval(top)
    return top


def width(n: int) -> int:
    """The compiled local-array size that holds a run of n columns (n ≤ MAX_RUN)."""
    return next(w for w in WIDTHS if n <= w)


def _launch(w: Any, s: Any, b: Any, u: Any, bits: int) -> tuple[Any, Any]:
    import mlx.core as mx

    n, rows = w.shape
    kernel = _kernel(backend() or "cuda")
    top = _top(bits)
    return kernel(inputs=[w, s, b, u, top], template=[("N", width(n))], grid=(rows, 1, 1),
                  threadgroup=(THREADS, 1, 1), output_shapes=[(n, rows), (n, rows)],
                  output_dtypes=[mx.uint8, mx.float32])


def problem(n: int, rows: int, bits: int, seed: int) -> tuple[np.ndarray, ...]:
    """A run of random columns (w, s, b, u as float32 NumPy: (n, rows) ×3, (n, n)) on a grid that fits them."""
    from .rounding import inverse_cholesky

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, rows)).astype(np.float32)
    s = rng.uniform(0.2, 0.5, (n, rows)).astype(np.float32)
    b = (-s * (2 ** bits - 1) / 2).astype(np.float32)
    x = rng.standard_normal((4 * n, n)).astype(np.float32)
    return w, s, b, inverse_cholesky(x.T @ x, 0.01)


def reference(w: np.ndarray, s: np.ndarray, b: np.ndarray, u: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's arithmetic in NumPy, every row at once (a row is one thread): (q uint8, errors float32)."""
    n = w.shape[0]
    acc = np.array(w, dtype=np.float32)
    q = np.empty(acc.shape, np.uint8)
    e = np.empty(acc.shape, np.float32)
    for k in range(n):
        qk = np.clip(np.rint((acc[k] - b[k]) / s[k]), 0, 2 ** bits - 1).astype(np.float32)
        e[k] = (acc[k] - (s[k] * qk + b[k])) / u[k, k]
        q[k] = qk
        acc[k + 1:] -= u[k, k + 1:, None] * e[k]
    return q, e


def _self_check() -> None:
    """Raise unless the kernel gives `reference`'s integers (up to float32 ties) and errors on a fixed run: NumPy,
    so the check compiles nothing but the kernel itself."""
    import mlx.core as mx

    arrays = problem(32, 96, 4, seed=0)
    q, e = (np.array(a) for a in _launch(*(mx.array(a) for a in arrays), 4))
    q_ref, e_ref = reference(*arrays, 4)
    same = float(np.mean(q == q_ref))
    gap = float(np.max(np.abs(e - e_ref)))
    if same < 0.99 or not gap <= 1e-3 * float(np.max(np.abs(e_ref))):
        raise RuntimeError(f"kernel disagrees with its reference ({same:.3f} of integers equal, error gap {gap:.2g})")


def run(w: Any, s: Any, b: Any, u: Any, bits: int) -> tuple[Any, Any] | None:
    """(q uint8 (n, rows), errors float32 (n, rows)) for the run `w` (n, rows) on scales / biases `s`, `b`
    (n, rows) and U's block `u` (n, n), all float32 MLX arrays; None where the kernel does not run."""
    global failure
    n, _rows = w.shape
    if n > MAX_RUN or not available():
        return None
    import mlx.core as mx

    try:
        if not _checked:
            _self_check()
        q, e = _launch(w, s, b, u, bits)
        if width(n) not in _checked:            # build and run it now, where a failure can still be caught
            mx.eval(q, e)
            _checked.add(width(n))
    except Exception as exc:                    # noqa: BLE001 - any build/launch error: the step form runs
        failure = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return None
    return q, e
