"""Read safetensors headers without loading tensors: names, dtypes, shapes, byte sizes, integrity."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError

DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
    "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
}
_MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Return (tensors, metadata). Raises ModelLoadError for a truncated or corrupt file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            raw = fh.read(8)
            if len(raw) < 8:
                raise ModelLoadError(f"{path.name} is truncated ({size} bytes): download it again")
            (length,) = struct.unpack("<Q", raw)
            if length > _MAX_HEADER or 8 + length > size:
                raise ModelLoadError(f"{path.name} is truncated or not a safetensors file: download it again")
            header = json.loads(fh.read(length))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"cannot read {path.name}: {exc}") from exc
    meta = header.pop("__metadata__", None) or {}
    tensors: dict[str, TensorInfo] = {}
    end = 0
    for name, spec in header.items():
        try:
            start, stop = spec["data_offsets"]
            tensors[name] = TensorInfo(name, spec["dtype"], tuple(spec["shape"]), stop - start)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"{path.name} has a corrupt header entry for {name!r}") from exc
        end = max(end, stop)
    if 8 + length + end > size:
        missing = 8 + length + end - size
        raise ModelLoadError(f"{path.name} is truncated ({missing} bytes missing): download it again")
    return tensors, meta
