"""A backend without a quantized-attention kernel for a model's shape gives one clear line, not a stack trace."""

from __future__ import annotations

import pytest
from temper.core.engine.kv_cache import KVPlan, guard_kernels
from temper.core.errors import TemperError

CUDA_MESSAGE = ('[quantized_matmul] No implementation for problem shape: 1x257x256x32, transpose: true, '
                'activation: bfloat16, bits: 8, group size: 64, mode: "affine".')   # MLX-CUDA 0.32.4, H200


def steps(fail_after: int, message: str):
    for i in range(fail_after):
        yield i, None
    raise RuntimeError(message)


def test_a_missing_kernel_under_a_quantized_cache_names_the_way_out() -> None:
    got = []
    with pytest.raises(TemperError) as err:
        for token, _ in guard_kernels(steps(2, CUDA_MESSAGE), KVPlan.uniform(4, 8)):
            got.append(token)
    assert got == [0, 1]
    text = str(err.value)
    assert "--kv-bits 0" in text and "1x257x256x32" in text and "uniform 8-bit" in text and "\n" not in text


@pytest.mark.parametrize("plan, message", [(None, CUDA_MESSAGE), (KVPlan.uniform(4, 8), "something else broke")])
def test_other_errors_pass_through_unchanged(plan, message) -> None:
    with pytest.raises(RuntimeError, match=message.split(":")[0].replace("[", r"\[").replace("]", r"\]")):
        list(guard_kernels(steps(1, message), plan))
