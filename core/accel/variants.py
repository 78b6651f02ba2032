"""Copies of a model folder in another dtype or uniformly quantized, for the CPU-speed tests and benchmark.

Not the quantization wizard's writer (that one is mixed-precision and sensitivity-aware): this makes the
plain bf16 / 4-bit variants a user would download, so native and fp32 paths can be compared on them.
Runs MLX: call on the engine thread.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def derive_model(src: Path, out: Path, *, dtype: str | None = None, bits: int | None = None,
                 group_size: int = 64, mode: str = "affine") -> Path:
    """Write `src` cast to `dtype` ("bfloat16", "float16", ...) and/or quantized (`bits`) to `out`.

    Quantization follows mlx-lm (`quantize_model`): after the cast, so scales are in `dtype`."""
    import mlx.core as mx
    from mlx_lm.utils import load_model, quantize_model, save_config, save_model

    model, config = load_model(Path(src))
    if dtype:
        model.set_dtype(getattr(mx, dtype))
        config["torch_dtype"] = dtype
    if bits:
        model, config = quantize_model(model, config, group_size, bits, mode=mode)
    out.mkdir(parents=True, exist_ok=True)
    save_model(out, model)
    save_config(config, config_path=out / "config.json")
    for file in Path(src).iterdir():
        if file.is_file() and (file.name.startswith("tokenizer") or file.name in
                               ("special_tokens_map.json", "chat_template.jinja", "generation_config.json")):
            shutil.copy2(file, out / file.name)
    return out
