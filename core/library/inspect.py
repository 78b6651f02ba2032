"""Describe a model folder without loading its weights: config.json plus safetensors headers.

Parameters count quantized weights unpacked (packed uint32 columns * 32 / bits); scales and biases
are storage overhead, not parameters. The real bits per weight is every tensor byte * 8 / parameters,
so a 4-bit model with fp32 scales shows its true cost instead of a nominal "4".
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError, TemperError
from .model_info import ModelInfo
from .safetensors_header import TensorInfo, file_size, read_header

_VISION_KEYS = ("vision_config", "vision_tower", "visual", "vision_model")
_VISION_TENSORS = ("vision_tower", "vision_model", "visual.", "multi_modal_projector", "embed_vision")
# Modes whose scales are uint8 exponents: exactly one (bits, group size) each.
_FP_MODES = {(4, 16): "nvfp4", (4, 32): "mxfp4", (8, 32): "mxfp8"}
_BITS = (2, 3, 4, 5, 6, 8, 1)
_GROUPS = (64, 32, 128, 16)


@dataclass(frozen=True)
class QuantSpec:
    bits: int
    group_size: int
    mode: str = "affine"

    def label(self) -> str:
        return self.mode if self.mode != "affine" else f"{self.bits}-bit g{self.group_size}"


def is_model_folder(path: Path) -> bool:
    """A folder that looks like a model (config.json or safetensors files), broken or not."""
    return path.is_dir() and ((path / "config.json").is_file() or any(path.glob("*.safetensors")))


def weight_files(path: Path) -> list[Path]:
    files = sorted(path.glob("model*.safetensors"))
    return files or sorted(path.glob("*.safetensors"))


def _quant_entries(config: dict[str, Any]) -> dict[str, Any]:
    q = config.get("quantization") or config.get("quantization_config") or {}
    return q if isinstance(q, dict) else {}


def infer_spec(prefix: str, weight: TensorInfo, scales: TensorInfo, config: dict[str, Any]) -> QuantSpec:
    """bits/group/mode of one quantized tensor: the config's per-path entry, else from the shapes."""
    q = _quant_entries(config)
    entry = q.get(prefix)
    if isinstance(entry, dict) and "bits" in entry:
        return QuantSpec(int(entry["bits"]), int(entry.get("group_size", q.get("group_size", 64))),
                         str(entry.get("mode", q.get("mode", "affine"))))
    packed, groups = weight.shape[-1], scales.shape[-1]
    product = packed * 32 // max(groups, 1)  # = bits * group_size
    if scales.dtype == "U8":
        for (bits, gs), mode in _FP_MODES.items():
            if bits * gs == product:
                return QuantSpec(bits, gs, mode)
    default_bits, default_gs = q.get("bits"), q.get("group_size")
    if default_bits and default_gs and int(default_bits) * int(default_gs) == product:
        return QuantSpec(int(default_bits), int(default_gs), str(q.get("mode", "affine")))
    for gs in ((int(default_gs),) if default_gs else ()) + _GROUPS:
        if product % gs == 0 and product // gs in _BITS:
            return QuantSpec(product // gs, gs, "affine")
    raise ModelLoadError(f"cannot tell how {prefix} is quantized ({packed} packed columns, {groups} groups)")


def architecture_known(model_type: str) -> bool:
    """Whether this mlx-lm has a module for `model_type`, without importing mlx."""
    spec = importlib.util.find_spec("mlx_lm")
    if spec is None or not spec.submodule_search_locations:
        return False
    models = Path(next(iter(spec.submodule_search_locations))) / "models"
    if (models / f"{model_type}.py").is_file():
        return True
    try:
        from mlx_lm.utils import MODEL_REMAPPING

        remapped = MODEL_REMAPPING.get(model_type)
        return bool(remapped) and (models / f"{remapped}.py").is_file()
    except Exception:
        return False


def _read_config(path: Path) -> dict[str, Any]:
    from ..engine.loader import read_config

    return read_config(path)


def _tensors(path: Path, files: list[Path]) -> dict[str, TensorInfo]:
    from .check import check_index

    check_index(path, files)
    tensors: dict[str, TensorInfo] = {}
    for file in files:
        tensors.update(read_header(file)[0])
    return tensors


def count(tensors: dict[str, TensorInfo], config: dict[str, Any]) -> tuple[int, int, dict[str, QuantSpec]]:
    """(parameters, tensor bytes, quantized prefix -> spec)."""
    params = total = 0
    specs: dict[str, QuantSpec] = {}
    for name, t in tensors.items():
        total += t.nbytes
        prefix, _, leaf = name.rpartition(".")
        if leaf in ("scales", "biases") and f"{prefix}.weight" in tensors:
            continue  # overhead of a quantized weight: bytes, not parameters
        scales = tensors.get(f"{prefix}.scales")
        if leaf == "weight" and scales is not None and t.dtype == "U32":
            spec = infer_spec(prefix, t, scales, config)
            specs[prefix] = spec
            rows = t.size // t.shape[-1]
            params += rows * (t.shape[-1] * 32 // spec.bits)
        else:
            params += t.size
    return params, total, specs


def describe_quant(specs: dict[str, QuantSpec]) -> str:
    if not specs:
        return "none"
    kinds = Counter(specs.values())
    if len(kinds) == 1:
        spec = next(iter(kinds))
        return f"uniform {spec.label()}" if spec.mode == "affine" else spec.label()
    modes = sorted({s.mode for s in kinds})
    bits = sorted({s.bits for s in kinds})
    span = f"{bits[0]}-{bits[-1]} bit" if len(bits) > 1 else f"{bits[0]}-bit"
    other = [m for m in modes if m != "affine"]
    return f"mixed {span}" + (f" ({'+'.join(other)})" if other else "")


def has_vision(config: dict[str, Any], tensors: dict[str, TensorInfo]) -> bool:
    if any(config.get(k) for k in _VISION_KEYS):
        return True
    return any(marker in name for name in tensors for marker in _VISION_TENSORS)


def _float_dtype(tensors: dict[str, TensorInfo]) -> str:
    dtypes = Counter()
    for t in tensors.values():
        if t.dtype in ("F32", "F16", "BF16"):
            dtypes[t.dtype] += t.size
    return dtypes.most_common(1)[0][0].lower() if dtypes else "-"


def inspect_model(path: Path, *, source: str = "folder", name: str | None = None) -> ModelInfo:
    """A ModelInfo for `path`. Never raises for a broken folder: the reason goes in `.error`."""
    path = Path(path)
    display = name or path.name
    config: dict[str, Any] = {}
    try:
        config = _read_config(path)
        files = weight_files(path)
        if not files:
            raise ModelLoadError(f"{path.name} has no model*.safetensors weight files")
        tensors = _tensors(path, files)
        from .check import check_config, check_remote_code, check_shapes

        check_config(path, config)
        check_remote_code(path, config)
        check_shapes(path, config, tensors)
        params, total, specs = count(tensors, config)
    except TemperError as exc:
        return _broken(path, source, display, config, str(exc))
    except Exception as exc:  # anything unexpected still becomes a one-line row, never a crash
        return _broken(path, source, display, config, f"{type(exc).__name__}: {exc}")
    arch = str(config.get("model_type", "?"))
    error = None
    if not architecture_known(arch):
        error = f"{path.name}: architecture {arch!r} is not supported by this mlx-lm"
    on_disk = sum(file_size(f) for f in files)
    details: dict[str, object] = {
        "files": len(files),
        "tensors": len(tensors),
        "tensor_bytes": total,
        "dtype": _float_dtype(tensors),
        "quantized_tensors": len(specs),
        "quant_mix": dict(Counter(spec.label() for spec in specs.values()).most_common()),
        "layers": config.get("num_hidden_layers") or (config.get("text_config") or {}).get("num_hidden_layers"),
        "hidden_size": config.get("hidden_size") or (config.get("text_config") or {}).get("hidden_size"),
        "vocab_size": config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size"),
    }
    return ModelInfo(
        name=display,
        path=path,
        source=source,
        architecture=arch,
        parameters=params,
        size_bytes=on_disk,
        quantization=describe_quant(specs),
        bits_per_weight=(total * 8 / params) if params else 0.0,
        vision=has_vision(config, tensors),
        error=error,
        details=details,
    )


def _broken(path: Path, source: str, name: str, config: dict[str, Any], error: str) -> ModelInfo:
    size = 0
    try:
        size = sum(f.stat().st_size for f in path.glob("*.safetensors"))
    except (OSError, RuntimeError):
        pass
    return ModelInfo(
        name=name, path=path, source=source, architecture=str(config.get("model_type", "?")),
        parameters=0, size_bytes=size, quantization="?", bits_per_weight=0.0,
        vision=bool(config) and any(config.get(k) for k in _VISION_KEYS), error=error,
    )
