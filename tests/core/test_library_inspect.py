"""inspect_model on the fixtures: exact parameters, real bits per weight, quantization kind, broken folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from temper.core.library.inspect import inspect_model


def _quantized_copy(engine, src: Path, out: Path, *, bits: int, group_size: int = 64, mode: str = "affine",
                    predicate=None, dtype: str | None = None) -> Path:
    """Quantize with mlx-lm itself (arguments by keyword: 0.32 changed their order) and save."""

    def job(ctx):
        import mlx.core as mx
        from mlx_lm.utils import get_total_parameters, load_model, quantize_model, save_config, save_model

        model, config = load_model(src)
        if dtype:
            model.set_dtype(getattr(mx, dtype))
        model, config = quantize_model(model=model, config=config, group_size=group_size, bits=bits, mode=mode,
                                       quant_predicate=predicate)
        save_model(out, model)
        save_config(config, config_path=out / "config.json")
        for f in src.glob("tokenizer*"):
            shutil.copy(f, out / f.name)
        return get_total_parameters(model)

    return engine.run(job, timeout=120)


def _tensor_sizes(folder: Path) -> dict[str, int]:
    from safetensors import safe_open

    sizes = {}
    for f in folder.glob("*.safetensors"):
        with safe_open(str(f), "numpy") as fh:
            for k in fh.keys():
                shape = fh.get_slice(k).get_shape()
                n = 1
                for d in shape:
                    n *= d
                sizes[k] = n
    return sizes


def test_fp32_llama_params_and_bpw_are_exact(tiny_llama: Path) -> None:
    info = inspect_model(tiny_llama)
    assert info.error is None
    assert info.architecture == "llama" and info.quantization == "none" and info.vision is False
    assert info.parameters == sum(_tensor_sizes(tiny_llama).values())
    assert info.bits_per_weight == 32.0
    assert info.size_bytes == (tiny_llama / "model.safetensors").stat().st_size
    assert info.details["layers"] == 2 and info.details["dtype"] == "f32"


def test_gemma4_is_described(tiny_gemma4: Path) -> None:
    info = inspect_model(tiny_gemma4)
    assert info.error is None and info.architecture == "gemma4_text"
    assert info.parameters == sum(_tensor_sizes(tiny_gemma4).values())


def test_uniform_4bit_counts_unpacked_params_and_real_bytes(engine, tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "q4"
    mlx_params = _quantized_copy(engine, tiny_llama, out, bits=4, group_size=64)
    info = inspect_model(out)
    assert info.quantization == "uniform 4-bit g64"
    assert info.parameters == mlx_params == inspect_model(tiny_llama).parameters
    # Real bytes: the fp32 model quantized keeps fp32 scales and biases, +1 bpw at g64 over nominal 4.
    tensor_bytes = info.details["tensor_bytes"]
    assert info.bits_per_weight == pytest.approx(tensor_bytes * 8 / info.parameters)
    assert 4.0 < info.bits_per_weight < 32.0


def test_bf16_4bit_real_bpw_includes_scales(engine, tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "q4bf16"
    _quantized_copy(engine, tiny_llama, out, bits=4, group_size=32, dtype="bfloat16")
    info = inspect_model(out)
    assert info.quantization == "uniform 4-bit g32"
    # linear weights: 4 + 2*16/32 = 5 bpw; embeddings are quantized too, norms bf16 (tiny share)
    assert 5.0 <= info.bits_per_weight < 5.3


def test_mixed_per_path_overrides(engine, tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "mixed"

    def predicate(path, module):
        if "mlp" in path:
            return {"bits": 8, "group_size": 64}
        if "k_proj" in path:
            return {"bits": 3, "group_size": 32}
        return True

    mlx_params = _quantized_copy(engine, tiny_llama, out, bits=4, predicate=predicate)
    info = inspect_model(out)
    assert info.quantization == "mixed 3-8 bit"
    assert info.parameters == mlx_params
    # 2 layers: 3 MLPs (gate/up/down) at 8-bit, 1 k_proj at 3-bit, q/v/o + embeddings + lm_head at 4-bit
    assert info.details["quant_mix"] == {"4-bit g64": 2 * 3 + 2, "8-bit g64": 2 * 3, "3-bit g32": 2}


def test_mxfp4_mode(engine, tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "mxfp4"
    _quantized_copy(engine, tiny_llama, out, bits=4, group_size=32, mode="mxfp4")
    # Shapes alone must be enough: drop the config's quantization section to exercise inference.
    config = json.loads((out / "config.json").read_text())
    assert inspect_model(out).quantization == "mxfp4"
    config.pop("quantization"), config.pop("quantization_config")
    (out / "config.json").write_text(json.dumps(config))
    info = inspect_model(out)
    assert info.quantization == "mxfp4" and info.parameters == inspect_model(tiny_llama).parameters


def test_vision_detected_from_config(tiny_llama: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_llama, tmp_path / "vlm")
    config = json.loads((folder / "config.json").read_text())
    config["vision_config"] = {"hidden_size": 32}
    (folder / "config.json").write_text(json.dumps(config))
    assert inspect_model(folder).vision is True


@pytest.mark.parametrize("breakage, message", [
    ("no-config", "no config.json"),
    ("bad-json", "not valid JSON"),
    ("no-weights", "no model*.safetensors"),
    ("truncated", "truncated"),
    ("unknown-arch", "'no_such_arch' is not supported"),
    ("missing-shard", "missing weight files"),
])
def test_broken_folders_become_rows_with_an_error(tiny_llama: Path, tmp_path: Path, breakage: str,
                                                  message: str) -> None:
    folder = shutil.copytree(tiny_llama, tmp_path / breakage)
    weights = folder / "model.safetensors"
    if breakage == "no-config":
        (folder / "config.json").unlink()
    elif breakage == "bad-json":
        (folder / "config.json").write_text("{not json")
    elif breakage == "no-weights":
        weights.unlink()
    elif breakage == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif breakage == "unknown-arch":
        config = json.loads((folder / "config.json").read_text())
        config["model_type"] = "no_such_arch"
        (folder / "config.json").write_text(json.dumps(config))
    elif breakage == "missing-shard":
        (folder / "model.safetensors.index.json").write_text(json.dumps(
            {"weight_map": {"a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    info = inspect_model(folder)
    assert info.error is not None and message in info.error
    assert "\n" not in info.error
