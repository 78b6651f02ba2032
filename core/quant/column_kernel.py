"""GPTQ's column loop as one CUDA kernel per run of columns (MLX `mx.fast.cuda_kernel`).

GPTQ never mixes rows: row r's columns are rounded in order, and each rounding error e (divided by U's
diagonal) moves r's later columns by -U[k, m]·e. So one thread per row can walk a whole run of N columns
(a 128-column block, or one group) with the run held in its own local array, reading the run's block of U
(N×N, the same addresses for every thread: broadcast reads). That is one launch where the step form
(rounding_device._steps) makes hundreds of small ones per 16 columns. It writes the integers and the
errors; the caller moves the errors onto the later columns with one matmul.

Only on MLX's CUDA backend. `TEMPER_GPTQ_KERNEL=0` turns it off (the step form then runs: the benchmark's A/B).
If the kernel fails to build or run the first time a (N, bits) pair is used, it is turned off for the
process and `failure` says why; the step form takes over, so a driver or compiler quirk costs time, never a
result.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

ENV = "TEMPER_GPTQ_KERNEL"
MAX_RUN = 256                 # columns a thread holds (its local array)
THREADS = 128                 # threads per CUDA block: small row counts still spread over several SMs

SOURCE = """
    const int rows = wt_shape[1];
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    float acc[N];
    for (int k = 0; k < N; ++k) acc[k] = wt[k * rows + r];
    for (int k = 0; k < N; ++k) {
        const float x = acc[k];
        const float sk = sc[k * rows + r];
        const float bk = bi[k * rows + r];
        const float q = fminf(fmaxf(rintf((x - bk) / sk), 0.0f), (float)TOP);
        const float e = (x - (sk * q + bk)) / uf[k * N + k];
        q_out[k * rows + r] = (uint8_t)q;
        e_out[k * rows + r] = e;
        for (int m = k + 1; m < N; ++m) acc[m] -= uf[k * N + m] * e;
    }
"""

failure: str | None = None    # why the kernel was turned off in this process, if it was
_checked: set[tuple[int, int]] = set()


def available() -> bool:
    """Whether runs go through the kernel: MLX's default device is a CUDA GPU, not turned off, not failed."""
    if failure is not None or os.environ.get(ENV, "") == "0":
        return False
    import mlx.core as mx

    try:
        return mx.default_device().type == mx.gpu and bool(mx.cuda.is_available())
    except AttributeError:    # an MLX without the cuda module
        return False


@lru_cache(maxsize=1)
def _kernel() -> Any:
    import mlx.core as mx

    return mx.fast.cuda_kernel(name="temper_gptq_run", input_names=["wt", "sc", "bi", "uf"],
                               output_names=["q_out", "e_out"], source=SOURCE)


def run(w: Any, s: Any, b: Any, u: Any, bits: int) -> tuple[Any, Any] | None:
    """(q uint8 (n, rows), errors float32 (n, rows)) for the run `w` (n, rows) on scales / biases `s`, `b`
    (n, rows) and U's block `u` (n, n), all float32 MLX arrays; None where the kernel does not run."""
    global failure
    n, rows = w.shape
    if n > MAX_RUN or not available():
        return None
    import mlx.core as mx

    try:
        q, e = _kernel()(inputs=[w, s, b, u], template=[("N", n), ("TOP", 2 ** bits - 1)],
                         grid=(rows, 1, 1), threadgroup=(THREADS, 1, 1),
                         output_shapes=[(n, rows), (n, rows)], output_dtypes=[mx.uint8, mx.float32])
        if (n, bits) not in _checked:           # build and run it now, where a failure can still be caught
            mx.eval(q, e)
            _checked.add((n, bits))
    except Exception as exc:                    # noqa: BLE001 - any build/launch error: the step form runs
        failure = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return None
    return q, e
