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
from .fakequant import fake_quantize

__all__ = ["QTensor", "fake_quantize", "model_hash", "quantizable"]

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
    """Every module mlx-lm's quantization would consider, in model order (embeddings first): the one rule,
    inventory.quantizable_modules (the model's own quant_predicate, vision/audio towers kept float)."""
    from .inventory import quantizable_modules

    out = [QTensor(path=path, module=module, shape=tuple(int(d) for d in module["weight"].shape))
           for path, module, _ in quantizable_modules(model)]
    if not out:
        raise QuantError("this model has no quantizable tensors (no Linear or Embedding weights)")
    return sorted(out, key=_order)   # embeddings, then blocks in order, then the head


def _order(t: QTensor) -> tuple[int, int, str]:
    if t.layer is not None:
        return (1, t.layer, t.path)
    return (0 if "embed" in t.path else 2, 0, t.path)


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
