"""How long a default quantize job is likely to take, said before it starts (the wizard's model step).

The job's time is mostly the model's own products, about 2·params FLOP a token for one forward:
- the calibration tokens go through the Fisher pass (a forward and a backward: ~3 forwards) and GPTQ's block
  passes with their H = Σ xᵀx (~2 more);
- the held-out tokens through the float model and the quantized one (2 forwards), when the job evaluates;
- an exact (hybrid) sensitivity pass adds ~3 forwards per candidate.

On MLX's CPU backend the whole job ran at ~35 GFLOP/s per core: SmolLM2-135M's default `temper quantize --bpw
4.5` (4,096 calibration and 4,096 held-out tokens: ~7.4 TFLOP by this count) took 106 s on the 2-core dev
machine (docs/benchmarks/quantize_speed_cpu.md, session 8). More cores are assumed to scale linearly up to 8;
that is not measured. On a GPU the job is not bound by its products (MLX-CUDA's first run compiles kernels for
minutes: docs/benchmarks/quantize_gpu.md) and nothing is measured on Metal, so no figure is given there.
"""

from __future__ import annotations

import os

CPU_FLOPS_PER_CORE = 35e9       # measured: see the docstring
CALIBRATION_FORWARDS = 5.0
EVALUATION_FORWARDS = 2.0
EXACT_FORWARDS_PER_CANDIDATE = 3.0
MAX_CORES = 8


def likely_seconds(params: int, calibration_tokens: int, evaluation_tokens: int = 0, *,
                   exact_candidates: int = 0, on_cpu: bool = True, cores: int | None = None) -> float | None:
    """Seconds a quantize job of this size is likely to take on MLX's CPU backend; None on a GPU (no rule)."""
    if not on_cpu:
        return None
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    forwards = calibration_tokens * (CALIBRATION_FORWARDS + EXACT_FORWARDS_PER_CANDIDATE * exact_candidates)
    forwards += evaluation_tokens * EVALUATION_FORWARDS
    return 2.0 * params * forwards / (CPU_FLOPS_PER_CORE * max(1, min(cores, MAX_CORES)))
