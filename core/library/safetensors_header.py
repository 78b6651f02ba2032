"""Read safetensors headers without loading tensors: names, dtypes, shapes, byte sizes, integrity.

Every entry is checked against its bytes (dtype known, shape x dtype width = the bytes its offsets span, the
span inside the file), so a file MLX would refuse (or abort on) is refused here first, with one line that
names the file and the tensor."""

from __future__ import annotations

import errno
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError

DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
    "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "C64": 8,
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


def display(path: Path) -> str:
    """`folder/file`: enough to find the file, short enough for one line."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def file_size(path: Path) -> int:
    """The size of a weight file, with a one-line error for a link loop, a dangling link or no access."""
    try:
        return Path(path).stat().st_size
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ModelLoadError(f"{display(path)} is a symbolic link that loops back on itself") from exc
        if exc.errno == errno.ENOENT and Path(path).is_symlink():
            raise ModelLoadError(f"{display(path)} is a link to a file that does not exist") from exc
        raise ModelLoadError(f"cannot read {display(path)}: {exc.strerror or exc}") from exc


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Return (tensors, metadata). Raises ModelLoadError for a truncated, corrupt or mis-declared file."""
    path = Path(path)
    name = display(path)
    size = file_size(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(8)
            if len(raw) < 8:
                raise ModelLoadError(f"{name} is truncated ({size} bytes): download it again")
            (length,) = struct.unpack("<Q", raw)
            if length > _MAX_HEADER or 8 + length > size:
                raise ModelLoadError(f"{name} is truncated or not a safetensors file: download it again")
            header = json.loads(fh.read(length))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{name} is not a safetensors file (its header is not JSON): download it again") from exc
    except OSError as exc:
        raise ModelLoadError(f"cannot read {name}: {exc.strerror or exc}") from exc
    if not isinstance(header, dict):
        raise ModelLoadError(f"{name} is not a safetensors file (its header is not a JSON object)")
    meta = header.pop("__metadata__", None) or {}
    tensors: dict[str, TensorInfo] = {}
    end = 0
    for key, spec in header.items():
        info, stop = _entry(name, key, spec)
        tensors[key] = info
        end = max(end, stop)
    if 8 + length + end > size:
        missing = 8 + length + end - size
        raise ModelLoadError(f"{name} is truncated ({missing} bytes missing): download it again")
    return tensors, meta if isinstance(meta, dict) else {}


def _entry(file: str, key: str, spec: object) -> tuple[TensorInfo, int]:
    """One header entry, checked: its dtype is known and its shape fills exactly the bytes it spans."""
    try:
        dtype, shape, (start, stop) = spec["dtype"], spec["shape"], spec["data_offsets"]  # type: ignore[index]
        ok = (isinstance(dtype, str) and isinstance(shape, list)
              and all(type(d) is int and d >= 0 for d in shape)
              and type(start) is int and type(stop) is int and 0 <= start <= stop)
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise ModelLoadError(f"{file} has a corrupt header entry for {key!r}: download it again")
    width = DTYPE_BYTES.get(dtype)
    if width is None:
        raise ModelLoadError(f"{file}: tensor {key!r} has an unknown dtype {dtype!r}")
    info = TensorInfo(key, dtype, tuple(shape), stop - start)
    if info.size * width != info.nbytes:
        raise ModelLoadError(f"{file}: tensor {key!r} is declared {dtype} {list(shape)} ({info.size * width} bytes) "
                             f"but holds {info.nbytes} bytes: the header does not match the data")
    return info, stop
