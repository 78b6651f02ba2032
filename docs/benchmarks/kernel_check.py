"""The GPTQ column kernel against its NumPy reference on the device, for run lengths and widths across both
compiled sizes, with the seconds each first call took (the build) and a repeat (the launch).

    python docs/benchmarks/kernel_check.py        # on MLX-CUDA or Metal; says so and exits 0 elsewhere
"""

from __future__ import annotations

import sys
import time

import numpy as np


def main() -> int:
    import mlx.core as mx
    from temper.core.quant import column_kernel

    if not column_kernel.available():
        print(f"column kernel not available here ({column_kernel.failure or 'no GPU backend'})")
        return 0
    bad = 0
    for n, bits in [(32, 4), (128, 4), (64, 3), (96, 8), (128, 2), (208, 5), (256, 6)]:
        arrays = column_kernel.problem(n, 4096, bits, seed=n + bits)
        dev = [mx.array(a) for a in arrays]
        times = []
        for _ in range(2):
            t = time.perf_counter()
            got = column_kernel.run(*dev, bits)
            if got is None:
                print(f"n={n} bits={bits}: kernel off: {column_kernel.failure}")
                return 1
            mx.eval(*got)
            times.append(time.perf_counter() - t)
        q, e = (np.array(a) for a in got)
        q_ref, e_ref = column_kernel.reference(*arrays, bits)
        # float32 ties: a column whose value sits on a rounding boundary may round the other way under a
        # different operation order (the kernel's fused multiply-adds), and its row's later errors move with it;
        # errors are compared on the rows where every integer agrees
        rows_same = np.all(q == q_ref, axis=0)
        same = float(np.mean(q == q_ref))
        gap = float(np.max(np.abs(e - e_ref)[:, rows_same]) / np.max(np.abs(e_ref)))
        ok = same > 0.999 and rows_same.mean() > 0.99 and gap < 1e-3
        bad += not ok
        print(f"n={n:3d} bits={bits} width={column_kernel.width(n)}: integers differing {int((q != q_ref).sum())} "
              f"of {q.size} (rows {int((~rows_same).sum())}), error gap on the other rows {gap:.1e}, "
              f"first call {times[0]:.3f} s, second {times[1] * 1e3:.2f} ms {'ok' if ok else 'WRONG'}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
