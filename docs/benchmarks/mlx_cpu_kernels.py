"""Why temper moves element-wise work from MLX to NumPy on a CPU: nanoseconds per element of MLX's CPU kernels
against NumPy's, and whether two MLX CPU streams run at once. Prints one Markdown table.

    .venv/bin/python docs/benchmarks/mlx_cpu_kernels.py

Each figure is measured in this run: both libraries see the same float32 arrays (4 x 256 x 1536, a SmolLM2 MLP
activation for four sequences). "two streams" evaluates eight independent kernels alternating between the
default CPU stream and a new one; its CPU seconds equal its wall seconds when the streams do not overlap.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def per_element(fn, size: int, n: int = 10) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n / size * 1e9


def main() -> None:
    from temper.core.accel.preload import ensure_fast_blas

    ensure_fast_blas(quiet=True)
    import mlx.core as mx
    import mlx.nn as nn
    import numpy as np

    x = mx.random.normal((4, 256, 1536))
    y = mx.random.normal((4, 256, 1536))
    mx.eval(x, y)
    xn, yn = np.array(x), np.array(y)
    size = x.size
    silu = mx.compile(lambda a, b: a * mx.sigmoid(a) * b)
    rows = [
        ("add", lambda: mx.eval(x + y), lambda: xn + yn),
        ("exp", lambda: mx.eval(mx.exp(x)), lambda: np.exp(xn)),
        ("log(abs(x))", lambda: mx.eval(mx.log(mx.abs(x))), lambda: np.log(np.abs(xn))),
        ("softmax (last axis)", lambda: mx.eval(mx.softmax(x, axis=-1)),
         lambda: (lambda e: e / e.sum(-1, keepdims=True))(np.exp(xn - xn.max(-1, keepdims=True)))),
        ("silu(a) * b, compiled in MLX", lambda: mx.eval(silu(x, y)), lambda: xn / (1 + np.exp(-xn)) * yn),
        ("nn.silu", lambda: mx.eval(nn.silu(x)), lambda: xn / (1 + np.exp(-xn))),
    ]
    print(f"CPUs {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.2f}, MLX {mx.__version__}, "
          f"NumPy {np.__version__}\n")
    print("| operation | MLX ns/element | NumPy ns/element | MLX / NumPy |\n|---|---:|---:|---:|")
    for name, m, n in rows:
        a, b = per_element(m, size), per_element(n, size)
        print(f"| {name} | {a:.2f} | {b:.2f} | {a / b:.1f}x |")

    kernel = mx.compile(lambda v: ((mx.round(v * 3.7) / 3.7 - v) ** 2).sum())
    xs = [mx.random.normal((2048, 2048)) for _ in range(8)]
    mx.eval(xs)
    other = mx.new_stream(mx.cpu)

    def timed(streams: list) -> tuple[float, float]:
        def run() -> None:
            outs = []
            for i, v in enumerate(xs):
                with mx.stream(streams[i % len(streams)]):
                    outs.append(kernel(v))
            mx.eval(outs)
        run()
        w, c = time.perf_counter(), time.process_time()
        for _ in range(5):
            run()
        return (time.perf_counter() - w) / 5, (time.process_time() - c) / 5

    print("\n| streams | wall ms | CPU ms |\n|---|---:|---:|")
    for label, streams in (("one", [mx.default_stream(mx.cpu)]), ("two", [mx.default_stream(mx.cpu), other])):
        w, c = timed(streams)
        print(f"| {label} | {w * 1e3:.1f} | {c * 1e3:.1f} |")


if __name__ == "__main__":
    main()
