"""What can be quantized in a model, how to fake-quantize one weight, and a model's identity hash.

A tensor is quantizable when mlx-lm's `quantize_model` would touch it: the module has `to_quantized`
(Linear, Embedding, SwitchLinear...) and the model's own `quant_predicate`, if any, does not refuse it.
Embeddings and lm_head are included and measured like any other tensor. Whether a given candidate fits
a tensor (its last dim splits into groups) is decided per candidate, so a tensor can take gs 32 but
not gs 128 (that candidate is skipped for it and recorded as such).
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import QuantError
from ..library.safetensors_header import read_header
from .candidates import Candidate

_LAYER = re.compile(r"\.layers\.(\d+)\.")


@dataclass
class QTensor:
    """One quantizable weight: its module path (as in config.json overrides) and the live module."""

    path: str
    module: Any
    shape: tuple[int, ...]

    @property
    def params(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def kind(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def layer(self) -> int | None:
        m = _LAYER.search(self.path + ".")
        return int(m.group(1)) if m else None


def quantizable(model: Any) -> list[QTensor]:
    """Every module mlx-lm's quantization would consider, in model order (embeddings first)."""
    predicate = getattr(model, "quant_predicate", None)
    out: list[QTensor] = []
    for path, module in model.named_modules():
        if not hasattr(module, "to_quantized") or "weight" not in module:
            continue
        weight = module["weight"]
        if weight.ndim < 2:
            continue
        if predicate is not None:
            try:
                verdict = predicate(path, module)
            except Exception:  # a predicate that needs arguments it cannot get: do not exclude on it
                verdict = True
            if verdict is False:
                continue
        out.append(QTensor(path=path, module=module, shape=tuple(int(d) for d in weight.shape)))
    if not out:
        raise QuantError("this model has no quantizable tensors (no Linear or Embedding weights)")
    return sorted(out, key=_order)   # embeddings, then blocks in order, then the head


def _order(t: QTensor) -> tuple[int, int, str]:
    if t.layer is not None:
        return (1, t.layer, t.path)
    return (0 if "embed" in t.path else 2, 0, t.path)


def fake_quantize(weight: Any, candidate: Candidate, storage_dtype: Any = None) -> Any:
    """Quantize then dequantize `weight` as `candidate` would store it; returns weight's dtype.

    storage_dtype: the dtype the quantized model keeps scales/biases in (the model's original float
    dtype, e.g. bfloat16). Quantizing in that dtype reproduces the rounding of the real file."""
    import mlx.core as mx

    src = weight.astype(storage_dtype) if storage_dtype is not None else weight
    q = mx.quantize(src, group_size=candidate.group_size, bits=candidate.bits, mode=candidate.mode)
    biases = q[2] if len(q) > 2 else None
    w = mx.dequantize(q[0], q[1], biases, group_size=candidate.group_size, bits=candidate.bits,
                      mode=candidate.mode)
    return w.astype(weight.dtype)


def model_hash(path: Path) -> str:
    """Identity of a model folder without reading all its weights: sha256 over config.json, each
    safetensors file's name, size and header, and 16 evenly spaced 4 KiB samples of its data (headers
    alone cannot tell two trainings of one architecture apart)."""
    path = Path(path)
    h = hashlib.sha256()
    config = path / "config.json"
    if config.is_file():
        h.update(config.read_bytes())
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise QuantError(f"{path} has no .safetensors files")
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        read_header(f)  # raises a clear error for a truncated or corrupt file
        with f.open("rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            h.update(fh.read(n))
            for i in range(16):
                fh.seek(size * i // 16)
                h.update(fh.read(4096))
    return h.hexdigest()
