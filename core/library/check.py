"""The cheap check every command runs before it opens a model folder (library show, chat, bench,
sensitivity, quantize, eval): no weights read, no MLX, milliseconds.

It refuses, in one line naming the file and the problem: a path that is not a folder, an empty folder, a
config.json that is not JSON / not an object / has no model_type / has impossible sizes, a model that
exists only as its own Python code (auto_map, model_file, a custom tokenizer class: temper never runs a
model's code), an architecture this mlx-lm lacks, no weight files, a shard index naming files outside the
folder or missing, any safetensors header that is truncated, random bytes, of an unknown dtype or whose
shape and dtype disagree with its bytes, weight files that are link loops, and an embedding whose shape
contradicts the config's hidden_size / vocab_size. What the architecture needs tensor by tensor is
checked when the weights are opened (temper.core.engine.loader.open_model: mlx-lm's strict load).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from .safetensors_header import TensorInfo, display, read_header

_POSITIVE = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size",
             "intermediate_size", "head_dim", "max_position_embeddings")
_FLOATS = ("F32", "F16", "BF16")


def check_model_folder(path: str | Path, *, architecture: bool = True) -> dict[str, Any]:
    """Check a local model folder without reading weights; return its config. Raises ModelLoadError."""
    path = Path(path)
    if not path.is_dir():
        if path.is_symlink():
            raise ModelLoadError(f"{path} is a link that loops or points nowhere, not a model folder")
        raise ModelLoadError(f"{path} is not a folder" if path.exists() else f"{path}: no such folder")
    config = read_config(path)
    check_config(path, config)
    check_remote_code(path, config)
    if architecture:
        from .inspect import architecture_known

        if not architecture_known(str(config["model_type"])):
            raise ModelLoadError(f"{path.name}: architecture {config['model_type']!r} is not supported by this mlx-lm")
    files = sorted(path.glob("model*.safetensors"))
    if not files:
        raise ModelLoadError(f"{path} has no model*.safetensors weight files")
    check_index(path, files)
    tensors: dict[str, TensorInfo] = {}
    for file in files:
        tensors.update(read_header(file)[0])
    check_shapes(path, config, tensors)
    return config


def read_config(path: Path) -> dict[str, Any]:
    config_file = path / "config.json"
    if not config_file.is_file():
        try:
            has_weights = any(path.glob("*.safetensors"))
        except OSError:
            has_weights = False
        if not has_weights:
            raise ModelLoadError(f"{path} is not a model folder (no config.json and no .safetensors files)")
        raise ModelLoadError(f"{path} has no config.json: copy it from the model's original repository")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"cannot read {display(config_file)}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{display(config_file)} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise ModelLoadError(f"{display(config_file)} is not a JSON object: is this a model folder?")
    if not isinstance(config.get("model_type"), str) or not config["model_type"]:
        raise ModelLoadError(f"{display(config_file)} names no model_type: is this a model folder?")
    return config


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language model's part of a config (multimodal configs nest it in text_config)."""
    inner = config.get("text_config")
    return {**config, **inner} if isinstance(inner, dict) else config


def check_config(path: Path, config: dict[str, Any]) -> None:
    """Sizes a model cannot have: a negative layer count, a string hidden size, a zero vocabulary."""
    where = display(path / "config.json")
    for part in (config, config.get("text_config")):
        if not isinstance(part, dict):
            continue
        for key in _POSITIVE:
            value = part.get(key)
            if value is None:
                continue
            values = value if isinstance(value, list) and key == "intermediate_size" else [value]
            if not values or not all(type(v) is int and v > 0 for v in values):
                raise ModelLoadError(f"{where}: {key} is {json.dumps(value)[:40]}, not a positive integer")


def check_remote_code(path: Path, config: dict[str, Any]) -> None:
    """temper never runs a model's own Python code: say so instead of failing somewhere inside mlx-lm."""
    from .inspect import architecture_known

    if config.get("model_file"):
        raise ModelLoadError(f"{display(path / 'config.json')} asks to run the model's own Python code "
                             f"({config['model_file']}); temper never runs a model's code")
    known = architecture_known(str(config["model_type"]))
    if not known and (config.get("auto_map") or config.get("trust_remote_code")):
        raise ModelLoadError(f"{path.name}: architecture {config['model_type']!r} exists only as the model's own "
                             "Python code (auto_map in config.json), which temper never runs; this mlx-lm has no "
                             "built-in version of it")
    tok_file = path / "tokenizer_config.json"
    if not tok_file.is_file():
        return
    try:
        tok = json.loads(tok_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{display(tok_file)} is not valid JSON: {exc}") from exc
    if not isinstance(tok, dict):
        raise ModelLoadError(f"{display(tok_file)} is not a JSON object")
    auto = tok.get("auto_map")
    wants_code = isinstance(auto, dict) and "AutoTokenizer" in auto or isinstance(auto, list)
    if wants_code and not (path / "tokenizer.json").is_file() and not _transformers_has(tok.get("tokenizer_class")):
        raise ModelLoadError(f"{display(tok_file)}: the tokenizer exists only as the model's own Python code "
                             "(auto_map), which temper never runs")


def _transformers_has(name: object) -> bool:
    if not isinstance(name, str) or not name.isidentifier():
        return False
    import transformers

    try:
        return getattr(transformers, name, None) is not None or getattr(transformers, name + "Fast", None) is not None
    except Exception:
        return False


def check_index(path: Path, files: list[Path]) -> None:
    index = path / "model.safetensors.index.json"
    if not index.is_file():
        return
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        names = set(weight_map.values())
        if not all(isinstance(n, str) for n in names):
            raise TypeError("file names must be strings")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelLoadError(f"{display(index)} is corrupt: {exc}") from exc
    outside = sorted(n for n in names if Path(n).name != n or n in ("", ".", ".."))
    if outside:
        raise ModelLoadError(f"{display(index)} names a weight file outside the model folder ({outside[0]}): "
                             "refusing to read it")
    missing = sorted(names - {f.name for f in files})
    if missing:
        raise ModelLoadError(f"{path.name} is missing weight files: {', '.join(missing[:3])}")


def check_shapes(path: Path, config: dict[str, Any], tensors: dict[str, TensorInfo]) -> None:
    """The embedding's shape against the config's vocab_size and hidden_size (the sizes every other shape
    follows): a config for another model size is named here, not deep inside a load."""
    embeds = sorted((n for n in tensors if n.endswith("embed_tokens.weight")
                     and not any(m in n for m in ("vision", "audio", "per_layer"))), key=len)
    if not embeds:
        return
    t = tensors[embeds[0]]
    c = text_config(config)
    where = display(path / "config.json")
    if len(t.shape) != 2:
        raise ModelLoadError(f"{path.name}: {t.name} has shape {list(t.shape)}, not (vocab, hidden)")
    vocab, hidden = c.get("vocab_size"), c.get("hidden_size")
    if isinstance(vocab, int) and t.shape[0] != vocab:
        raise ModelLoadError(f"{where} says vocab_size {vocab}, but {t.name} has {t.shape[0]} rows: "
                             "the config belongs to another model")
    if isinstance(hidden, int) and t.dtype in _FLOATS and t.shape[1] != hidden:
        raise ModelLoadError(f"{where} says hidden_size {hidden}, but {t.name} is {list(t.shape)}: "
                             "the config belongs to another model")
