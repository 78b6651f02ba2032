"""Find and load a model: a folder, or a Hub id already in the local cache. Clear one-line errors."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from ..library.safetensors_header import read_header

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class LoadedModel:
    """A model and tokenizer living on the engine thread."""

    path: Path
    model: Any
    tokenizer: Any
    config: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name


def resolve(path_or_id: str | Path) -> Path:
    """A local folder as it is; a Hub id through the local Hugging Face cache only (never downloads)."""
    path = Path(path_or_id).expanduser()
    if path.exists():
        return path
    text = str(path_or_id)
    if _HUB_ID.match(text):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(text, local_files_only=True))
        except Exception as exc:
            raise ModelLoadError(
                f"{text} is not in the local Hugging Face cache: download it first (temper library download {text})"
            ) from exc
    raise ModelLoadError(f"{text}: no such folder")


def read_config(path: Path) -> dict[str, Any]:
    config_file = path / "config.json"
    if not config_file.is_file():
        if not any(path.glob("*.safetensors")):
            raise ModelLoadError(f"{path} is not a model folder (no config.json and no .safetensors files)")
        raise ModelLoadError(f"{path} has no config.json: copy it from the model's original repository")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{config_file} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or "model_type" not in config:
        raise ModelLoadError(f"{config_file} names no model_type: is this a model folder?")
    return config


def architecture_supported(config: dict[str, Any]) -> bool:
    from mlx_lm.utils import _get_classes

    try:
        _get_classes(config)
    except (ValueError, ImportError):
        return False
    return True


def validate(path: Path) -> dict[str, Any]:
    """Check a folder without loading weights; return its config. Raises ModelLoadError."""
    if not path.is_dir():
        raise ModelLoadError(f"{path} is not a folder")
    config = read_config(path)
    if not architecture_supported(config):
        raise ModelLoadError(
            f"{path.name}: architecture {config['model_type']!r} is not supported by this mlx-lm"
        )
    weights = sorted(path.glob("model*.safetensors"))
    if not weights:
        raise ModelLoadError(f"{path} has no model*.safetensors weight files")
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            wanted = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"{index.name} is corrupt: {exc}") from exc
        missing = sorted(wanted - {w.name for w in weights})
        if missing:
            raise ModelLoadError(f"{path.name} is missing weight files: {', '.join(missing[:3])}")
    for file in weights:
        read_header(file)
    return config


def load(path_or_id: str | Path, *, lazy: bool = False, compute: str = "auto") -> LoadedModel:
    """Load with mlx-lm. Must run on the engine thread (it creates MLX arrays).

    `compute` ("auto" | "native" | "fp32"): on MLX's CPU backend, "auto" runs bf16/fp16 models in fp32 and
    dequantizes quantized ones when a fast BLAS is loaded and the fp32 weights fit (temper.core.accel.compute);
    the decision is in `extra["compute"]`. Never changes anything on Metal or CUDA."""
    from mlx_lm.utils import load_model, load_tokenizer

    path = resolve(path_or_id)
    validate(path)
    try:
        model, config = load_model(path, lazy=lazy)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"{path.name}: weights do not match the config ({_short(exc)})") from exc
    try:
        tokenizer = load_tokenizer(path, eos_token_ids=config.get("eos_token_id"))
    except Exception as exc:
        raise ModelLoadError(f"{path.name}: cannot load its tokenizer ({_short(exc)})") from exc
    from ..accel.compute import maybe_upcast

    plan = maybe_upcast(model, compute)
    return LoadedModel(path=path, model=model, tokenizer=tokenizer, config=config, extra={"compute": plan})


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) < 160 else text[:157] + "..."
