"""Corrupt, hostile and unlucky model folders, built from a good tiny model (issue 16's matrix).

Each builder takes (good model folder, an empty place to build in) and returns the path to hand a command:
usually a copy of the model with one thing broken. Pure Python (json, struct): no MLX, so building a
folder is milliseconds.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

WEIGHTS = "model.safetensors"


def read_safetensors(file: Path) -> tuple[dict, bytes]:
    raw = file.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + length]), raw[8 + length:]


def write_safetensors(file: Path, header: dict, data: bytes) -> None:
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    file.write_bytes(struct.pack("<Q", len(text)) + text + data)


def _copy(good: Path, where: Path) -> Path:
    return Path(shutil.copytree(good, where / good.name))


def _first_matrix(header: dict) -> str:
    """The name of the first 2-D float tensor (a projection weight)."""
    return next(n for n, s in sorted(header.items()) if n != "__metadata__" and len(s["shape"]) == 2
                and "proj" in n)


def _edit_header(good: Path, where: Path, edit: Callable[[dict], None]) -> Path:
    out = _copy(good, where)
    header, data = read_safetensors(out / WEIGHTS)
    edit(header)
    write_safetensors(out / WEIGHTS, header, data)
    return out


def _edit_config(good: Path, where: Path, edit: Callable[[dict], object]) -> Path:
    out = _copy(good, where)
    config = json.loads((out / "config.json").read_text())
    result = edit(config)
    (out / "config.json").write_text(result if isinstance(result, str) else json.dumps(config))
    return out


def empty(good: Path, where: Path) -> Path:
    out = where / "empty"
    out.mkdir()
    return out


def truncated(good: Path, where: Path) -> Path:
    out = _copy(good, where)
    raw = (out / WEIGHTS).read_bytes()
    (out / WEIGHTS).write_bytes(raw[: len(raw) // 2])
    return out


def header_shape(good: Path, where: Path) -> Path:
    """One tensor's declared shape is twice its bytes (offsets unchanged)."""
    def edit(h: dict) -> None:
        name = _first_matrix(h)
        h[name]["shape"] = [h[name]["shape"][0] * 2, h[name]["shape"][1]]
    return _edit_header(good, where, edit)


def header_dtype(good: Path, where: Path) -> Path:
    """One tensor's declared dtype has another width than its bytes (F32 bytes said to be F16)."""
    def edit(h: dict) -> None:
        h[_first_matrix(h)]["dtype"] = "F16" if h[_first_matrix(h)]["dtype"] == "F32" else "F32"
    return _edit_header(good, where, edit)


def unknown_dtype(good: Path, where: Path) -> Path:
    def edit(h: dict) -> None:
        h[_first_matrix(h)]["dtype"] = "Q7"
    return _edit_header(good, where, edit)


def missing_tensor(good: Path, where: Path) -> Path:
    """A tensor the architecture needs is absent (the header and bytes agree)."""
    out = _copy(good, where)
    header, data = read_safetensors(out / WEIGHTS)
    meta = header.pop("__metadata__", None)
    drop = _first_matrix(header)
    kept, offset, chunks = {}, 0, []
    for name, spec in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        if name == drop:
            continue
        start, stop = spec["data_offsets"]
        chunks.append(data[start:stop])
        kept[name] = {**spec, "data_offsets": [offset, offset + stop - start]}
        offset += stop - start
    if meta is not None:
        kept["__metadata__"] = meta
    write_safetensors(out / WEIGHTS, kept, b"".join(chunks))
    return out


def random_bytes(good: Path, where: Path) -> Path:
    out = _copy(good, where)
    size = (out / WEIGHTS).stat().st_size
    (out / WEIGHTS).write_bytes(os.urandom(min(size, 1 << 16)))
    return out


def bad_json(good: Path, where: Path) -> Path:
    return _edit_config(good, where, lambda c: '{"model_type": "llama", "hidden_size": 64,,')


def not_an_object(good: Path, where: Path) -> Path:
    return _edit_config(good, where, lambda c: "[1, 2, 3]")


def wrong_hidden_size(good: Path, where: Path) -> Path:
    return _edit_config(good, where, lambda c: c.update(hidden_size=c["hidden_size"] * 2 - 32))


def negative_layers(good: Path, where: Path) -> Path:
    return _edit_config(good, where, lambda c: c.update(num_hidden_layers=-3))


def remote_code(good: Path, where: Path) -> Path:
    """A folder whose architecture lives in its own Python file (trust_remote_code territory)."""
    out = _edit_config(good, where, lambda c: c.update(
        model_type="wizardlm_custom", architectures=["WizardForCausalLM"],
        auto_map={"AutoConfig": "configuration_wizard.WizardConfig",
                  "AutoModelForCausalLM": "modeling_wizard.WizardForCausalLM"}))
    (out / "modeling_wizard.py").write_text("raise SystemExit('remote code ran')\n")
    return out


def remote_tokenizer(good: Path, where: Path) -> Path:
    """A supported architecture whose tokenizer exists only as the model's own Python code."""
    out = _copy(good, where)
    (out / "tokenizer.json").unlink()
    tok = json.loads((out / "tokenizer_config.json").read_text())
    tok.update(tokenizer_class="WizardTokenizer", auto_map={"AutoTokenizer": ["tokenization_wizard.WizardTokenizer",
                                                                              None]})
    (out / "tokenizer_config.json").write_text(json.dumps(tok))
    (out / "tokenization_wizard.py").write_text("raise SystemExit('remote code ran')\n")
    return out


def symlink_loop(good: Path, where: Path) -> Path:
    out = _copy(good, where)
    (out / WEIGHTS).unlink()
    (out / WEIGHTS).symlink_to(WEIGHTS)
    return out


def dotdot(good: Path, where: Path) -> Path:
    """`model/..`: the folder above a model, which holds a model but is not one."""
    model = _copy(good, where)
    return model / ".."


def index_escape(good: Path, where: Path) -> Path:
    """A shard index whose weight map points outside the folder."""
    out = _copy(good, where)
    header, _ = read_safetensors(out / WEIGHTS)
    names = [n for n in header if n != "__metadata__"]
    weight_map = {n: WEIGHTS for n in names}
    weight_map[names[0]] = "../../outside.safetensors"
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return out


CORRUPT: dict[str, Callable[[Path, Path], Path]] = {
    "empty": empty,
    "truncated": truncated,
    "header-shape": header_shape,
    "header-dtype": header_dtype,
    "unknown-dtype": unknown_dtype,
    "missing-tensor": missing_tensor,
    "random-bytes": random_bytes,
    "bad-json": bad_json,
    "config-not-object": not_an_object,
    "wrong-hidden-size": wrong_hidden_size,
    "negative-layers": negative_layers,
    "remote-code": remote_code,
    "remote-tokenizer": remote_tokenizer,
    "symlink-loop": symlink_loop,
    "dotdot": dotdot,
    "index-escape": index_escape,
}


def with_nonfinite(good: Path, where: Path, value: float = float("nan")) -> tuple[Path, str]:
    """A copy with one value of one projection weight set to NaN (or inf). Returns (folder, tensor name)."""
    import numpy as np

    out = _copy(good, where)
    header, data = read_safetensors(out / WEIGHTS)
    name = _first_matrix(header)
    spec = header[name]
    start, _ = spec["data_offsets"]
    dtype = {"F32": np.float32, "F16": np.float16}.get(spec["dtype"])
    buf = bytearray(data)
    if dtype is not None:
        buf[start:start + np.dtype(dtype).itemsize] = np.array([value], dtype=dtype).tobytes()
    else:  # BF16: the high half of a float32
        buf[start:start + 2] = np.array([value], dtype=np.float32).tobytes()[2:]
    write_safetensors(out / WEIGHTS, header, bytes(buf))
    return out, name
