"""A float copy of a quantized model (what Quantize needs), and the quantizer's refusal that points to it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from temper.core.errors import QuantError, TemperError
from temper.core.library.float_copy import copy_path, existing_copy, float_copy, is_quantized
from temper.core.quant.inventory import load_inventory
from temper.core.quant.pipeline import quantize
from temper.core.quant.recipes import build_plan
from temper.core.quant.request import QuantRequest
from temper.core.quant.write import write_quantized


@pytest.fixture
def quantized(tiny_llama: Path, engine, tmp_path: Path) -> Path:
    out = tmp_path / "tiny-q8"
    inv = engine.run(lambda ctx: load_inventory(tiny_llama))
    engine.run(lambda ctx: write_quantized(tiny_llama, build_plan("uniform-8", inv), out))
    return out


def _weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    out: dict[str, np.ndarray] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def test_float_copy_dequantizes_beside_the_source(quantized: Path, tiny_llama: Path, engine) -> None:
    out = engine.run(lambda ctx: float_copy(quantized, dtype="float32"))
    assert out == copy_path(quantized, "float32") == quantized.parent / "tiny-q8-f32"
    assert not is_quantized(out) and existing_copy(quantized, "float32") == out
    config = json.loads((out / "config.json").read_text())
    assert config["torch_dtype"] == "float32"
    assert (out / "tokenizer.json").is_file()
    base, copy = _weights(tiny_llama), _weights(out)
    assert set(copy) == set(base)                   # no scales/biases left, every tensor back
    w = "model.layers.0.mlp.down_proj.weight"
    err = np.abs(copy[w].astype(np.float32) - base[w].astype(np.float32)).max()
    assert 0 < err < 0.02 * np.abs(base[w]).max()   # 8-bit round trip: close, not identical
    with pytest.raises(TemperError, match="already exists"):
        engine.run(lambda ctx: float_copy(quantized, dtype="float32"))
    with pytest.raises(TemperError, match="not quantized"):
        engine.run(lambda ctx: float_copy(tiny_llama))


def test_quantize_refuses_a_quantized_source_and_names_the_float_copy(quantized: Path, engine) -> None:
    req = QuantRequest(model=str(quantized), recipe="uniform-4")
    with pytest.raises(QuantError, match="temper library float-copy") as info:
        engine.run(lambda ctx: quantize(ctx, req))
    assert "--dequantize" in str(info.value)
    copy = engine.run(lambda ctx: float_copy(quantized))
    with pytest.raises(QuantError, match=f"quantize its float copy {copy}"):
        engine.run(lambda ctx: quantize(ctx, req))
