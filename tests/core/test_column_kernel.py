"""The GPU column kernel (`column_kernel`): what it computes, and what happens where it cannot run.

The kernel itself runs only on MLX's CUDA and Metal backends (the last test, skipped elsewhere: docs/benchmarks/
gptq_forms.py runs the same comparison on the device machine). Here: its arithmetic in NumPy (`reference`, what
the kernel checks itself against), thread by thread, matches the step form it replaces, and a kernel that fails to build hands the run to the
step form instead of failing the quantize."""

from __future__ import annotations

import numpy as np
import pytest


def _run_problem(n: int, rows: int, bits: int, seed: int):
    from temper.core.quant.column_kernel import problem

    return problem(n, rows, bits, seed)


def test_kernel_arithmetic_is_the_step_forms(engine):
    def run(ctx):
        import mlx.core as mx
        from temper.core.quant.rounding_device import steps

        w, s, b, u = _run_problem(64, 40, 3, seed=1)
        q, e = steps(*(mx.array(a) for a in (w, s, b, u)), 3)
        return (w, s, b, u), np.array(q), np.array(e)

    (w, s, b, u), q_steps, e_steps = engine.run(run)
    from temper.core.quant.column_kernel import reference

    q, e = reference(w, s, b, u, 3)
    assert np.mean(q == q_steps) > 0.995
    assert np.allclose(e, e_steps, atol=1e-3 * float(np.abs(e).max()))


def test_a_kernel_that_fails_hands_the_run_to_the_step_form(engine, monkeypatch):
    from temper.core.quant import column_kernel

    monkeypatch.setattr(column_kernel, "available",
                        lambda: column_kernel.failure is None)       # as on CUDA; the CPU then refuses it

    def run(ctx):
        import mlx.core as mx
        from temper.core.quant.rounding_device import round_run, steps

        arrays = [mx.array(a) for a in _run_problem(32, 24, 4, seed=2)]
        got = round_run(*arrays, 4)
        want = steps(*arrays, 4)
        return np.array(got[0]), np.array(want[0])

    try:
        got, want = engine.run(run)
        assert column_kernel.failure is not None and len(column_kernel.failure) <= 200
        assert np.array_equal(got, want)
    finally:
        column_kernel.failure = None


@pytest.mark.parametrize("n, bits", [(128, 4), (64, 3), (96, 8), (32, 2), (208, 5)])
def test_kernel_equals_step_form_on_a_gpu(engine, n, bits):
    """Every run length and width through the kernel's two compiled sizes (n and bits are read at run time)."""
    def run(ctx):
        import mlx.core as mx
        from temper.core.quant import column_kernel
        from temper.core.quant.rounding_device import steps

        if not column_kernel.available():
            return None
        arrays = [mx.array(a) for a in _run_problem(n, 300, bits, seed=3)]
        got = column_kernel.run(*arrays, bits)
        assert got is not None, column_kernel.failure
        want = steps(*arrays, bits)
        return [np.array(a) for a in (*got, *want)]

    out = engine.run(run)
    if out is None:
        pytest.skip("the kernel runs only on a GPU backend of MLX (CUDA or Metal)")
    q, e, q_steps, e_steps = out
    assert np.mean(q == q_steps) > 0.995
    assert np.allclose(e, e_steps, atol=1e-3 * float(np.abs(e_steps).max()))


def test_one_compiled_size_serves_every_run_up_to_it():
    from temper.core.quant.column_kernel import MAX_RUN, WIDTHS, width

    assert [width(n) for n in (1, 16, 128)] == [WIDTHS[0]] * 3
    assert width(129) == width(MAX_RUN) == MAX_RUN
