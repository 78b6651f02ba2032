"""A float (bf16 by default) copy of a quantized model, so it can be quantized again or measured.

Quantizing an already quantized model compounds the error, so the quantizer refuses it; this makes the
model it should start from. A GGUF import whose file is still on disk is re-imported with its blocks
dequantized (exact: the GGUF's own scales, in float32, before the cast). Any other MLX model is loaded
with mlx-lm, its quantized layers dequantized, then cast. The copy goes beside the source as
`<name>-<dtype>` (atomically). Runs MLX: call it on one thread (the engine thread in the app).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from .. import atomic
from ..errors import TemperError
from ..paths import data_dir

DTYPES = {"bfloat16": "bf16", "float16": "f16", "float32": "f32"}
Progress = Callable[[str, float], None]


def is_quantized(folder: Path) -> bool:
    config = _config(folder)
    return bool(config.get("quantization") or config.get("quantization_config"))


def copy_name(folder: Path, dtype: str = "bfloat16") -> str:
    return f"{Path(folder).name}-{DTYPES[dtype]}"


def copy_path(folder: Path, dtype: str = "bfloat16") -> Path:
    """Where `float_copy` puts the copy of `folder` (beside it)."""
    folder = Path(folder).expanduser()
    return folder.parent / copy_name(folder, dtype)


def existing_copy(folder: Path, dtype: str = "bfloat16") -> Path | None:
    """The float copy made earlier, if it is there and unquantized."""
    path = copy_path(folder, dtype)
    if (path / "config.json").is_file() and not is_quantized(path):
        return path
    return None


def source_gguf(folder: Path) -> Path | None:
    """The GGUF file `folder` was imported from, if it is still on disk."""
    imported = _config(folder).get("temper") or {}
    candidates = []
    if imported.get("source"):
        candidates.append(Path(imported["source"]))
    if imported.get("imported_from"):
        name = Path(imported["imported_from"]).name
        candidates += [data_dir() / "downloads" / name, Path(folder).parent / name]
    return next((p for p in candidates if p.is_file()), None)


def float_copy(folder: Path, *, dtype: str = "bfloat16", progress: Progress | None = None,
               check: Callable[[], None] | None = None, overwrite: bool = False) -> Path:
    """Write the float copy of the quantized model `folder`; return its path."""
    folder = Path(folder).expanduser()
    if dtype not in DTYPES:
        raise TemperError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype}")
    if not (folder / "config.json").is_file():
        raise TemperError(f"{folder} is not a model folder (no config.json)")
    if not is_quantized(folder):
        raise TemperError(f"{folder.name} is not quantized: it is already a float model")
    dest = copy_path(folder, dtype)
    if dest.exists() and not overwrite:
        raise TemperError(f"{dest} already exists: use it, or delete it to make the copy again")
    report = progress or (lambda _m, _f: None)
    gguf = source_gguf(folder)
    if gguf is not None:
        from .gguf_import import import_gguf

        return import_gguf(gguf, name=dest.name, dequantize=True, dtype=dtype, dest_root=dest.parent,
                           overwrite=overwrite, progress=progress, check=check)
    return _dequantize_mlx(folder, dest, dtype, report, check or (lambda: None), overwrite)


def _dequantize_mlx(folder: Path, dest: Path, dtype: str, report: Progress, check: Callable[[], None],
                    overwrite: bool) -> Path:
    import mlx.core as mx
    from mlx.utils import tree_map
    from mlx_lm.utils import dequantize_model, load_model, save_config, save_model

    report("loading", 0.0)
    model, config = load_model(folder, lazy=True)
    check()
    report("dequantizing", 0.3)
    model = dequantize_model(model)
    target = getattr(mx, dtype)
    model.update(tree_map(lambda v: v.astype(target) if mx.issubdtype(v.dtype, mx.floating) else v,
                          model.parameters()))
    check()
    config = {k: v for k, v in config.items() if k not in ("quantization", "quantization_config")}
    config["torch_dtype"] = dtype
    report("writing", 0.6)
    with atomic.folder(dest, overwrite=overwrite) as tmp:
        save_model(tmp, model)
        save_config(config, tmp / "config.json")
        for f in folder.iterdir():   # tokenizer, chat template, card: everything but weights and config
            if f.is_file() and f.suffix != ".safetensors" and f.name not in ("config.json",
                                                                             "model.safetensors.index.json"):
                shutil.copy2(f, tmp / f.name)
        check()
    report("done", 1.0)
    return dest


def _config(folder: Path) -> dict:
    try:
        return json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return {}
