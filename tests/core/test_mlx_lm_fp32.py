"""docs/benchmarks/mlx_lm_fp32.py: mlx-lm's calibrated quantizers computed in fp32 and stored as a bf16 run stores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "benchmarks"))
import mlx_lm_fp32  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture
def tokens() -> np.ndarray:
    return np.random.default_rng(0).integers(3, 1024, (8, 64)).astype(np.int32)


def tensors(folder: Path) -> dict:
    import mlx.core as mx

    return mx.load(str(folder / "model.safetensors"))


def bf16_path(method: str, src: Path, out: Path, args: list[str], tokens, monkeypatch) -> None:
    """mlx-lm's own run on the bf16 folder (its forward passes in bf16: slow, so only on the tiny model)."""
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    mlx_lm_fp32.run(method, src, out, args, tokens, out.parent, fp32=False)


def test_fp32_copy_and_store_as_round_trip(trained_tiny, tmp_path, engine):
    import mlx.core as mx

    copy = engine.run(lambda ctx: mlx_lm_fp32.fp32_copy(trained_tiny, tmp_path / "fp32"))
    assert {v.dtype for v in tensors(copy).values()} == {mx.float32}
    assert json.loads((copy / "config.json").read_text())["torch_dtype"] == "float32"
    engine.run(lambda ctx: mlx_lm_fp32.store_as(copy, "bfloat16"))
    back, orig = tensors(copy), tensors(trained_tiny)
    assert all(back[k].dtype == mx.bfloat16 and mx.array_equal(back[k], orig[k]).item() for k in orig)
    assert not (tmp_path / "fp32.tmp").exists()


def test_gptq_fp32_path_stores_what_a_bf16_run_stores(trained_tiny, tmp_path, tokens, monkeypatch, engine):
    """Same tensors, dtypes and bytes as mlx-lm's bf16 run (so the same real bpw), packed weights included."""
    monkeypatch.chdir(tmp_path)
    args = ["--bits", "4", "--group-size", "64"]
    engine.run(lambda ctx: mlx_lm_fp32.run("gptq", trained_tiny, tmp_path / "fp32-path", args, tokens, tmp_path))
    engine.run(lambda ctx: bf16_path("gptq", trained_tiny, tmp_path / "bf16-path", args, tokens, monkeypatch))
    a, b = tensors(tmp_path / "fp32-path"), tensors(tmp_path / "bf16-path")
    assert {k: (v.dtype, v.shape) for k, v in a.items()} == {k: (v.dtype, v.shape) for k, v in b.items()}
    assert sum(v.nbytes for v in a.values()) == sum(v.nbytes for v in b.values())
    assert json.loads((tmp_path / "fp32-path/config.json").read_text())["torch_dtype"] == "bfloat16"


def test_dynamic_quant_fp32_sensitivities_give_its_bf16_plan(trained_tiny, tmp_path, tokens, monkeypatch, engine):
    """Only the sensitivities are fp32; the plan and the quantization are mlx-lm's bf16 path: on the tiny model
    the result is the bf16 run's, bit for bit."""
    import mlx.core as mx

    monkeypatch.chdir(tmp_path)
    args = ["--target-bpw", "4.8"]
    engine.run(lambda ctx: mlx_lm_fp32.run("dynamic_quant", trained_tiny, tmp_path / "fp32-path", args, tokens,
                                           tmp_path))
    assert mlx_lm_fp32.sensitivity_file(tmp_path, args).is_file()
    engine.run(lambda ctx: bf16_path("dynamic_quant", trained_tiny, tmp_path / "bf16-path", args, tokens,
                                     monkeypatch))
    a, b = tensors(tmp_path / "fp32-path"), tensors(tmp_path / "bf16-path")
    assert a.keys() == b.keys() and all(mx.array_equal(a[k], b[k]).item() for k in a)
    plan = json.loads((tmp_path / "fp32-path/config.json").read_text())["quantization"]
    assert {v["bits"] for v in plan.values() if isinstance(v, dict)} == {5}   # a mixed plan: some layers at 5 bits


def test_sensitivity_files_are_per_bits(tmp_path):
    same = mlx_lm_fp32.sensitivity_file(tmp_path, ["--target-bpw", "4.5"])
    assert same == mlx_lm_fp32.sensitivity_file(tmp_path, ["--target-bpw", "5.0"])
    assert same != mlx_lm_fp32.sensitivity_file(tmp_path, ["--target-bpw", "3.8", "--low-bits", "3"])


@pytest.mark.parametrize("bits,group", [(4, 64), (6, 64), (4, 32), (3, 64)])
def test_quantizing_in_fp32_then_storing_bf16_is_quantizing_bf16(bits, group, engine):
    """What store_as relies on for the layers mlx-lm rounds to nearest (GPTQ's 6-bit fallback, AWQ's 4-bit g32
    embedding): MLX quantizes a bf16 weight exactly as its fp32 copy, scales and biases rounded to bf16."""
    import mlx.core as mx

    def check(ctx):
        w = (mx.random.normal((256, 512), key=mx.random.key(bits)) * 0.05).astype(mx.bfloat16)
        b = mx.quantize(w, group_size=group, bits=bits)
        f = mx.quantize(w.astype(mx.float32), group_size=group, bits=bits)
        return [mx.array_equal(x, y.astype(x.dtype)).item() for x, y in zip(b, f, strict=True)]

    assert engine.run(check) == [True, True, True]
