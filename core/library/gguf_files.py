"""GGUF files in the Library: read a GGUF header (no tensor data) fast enough for a scan.

gguf-py's GGUFReader builds arrays for every metadata field (seconds for a 49k-token vocabulary);
this walks the header once, skipping what it does not need, and counts parameters and real bytes
from the tensor table. Files are listed so they can be imported (`temper library import`, `i` in
the Library tab); they are not loaded as they are.
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from pathlib import Path
from typing import IO, Any

from ..errors import ModelLoadError
from .model_info import ModelInfo

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_WANTED = {"general.architecture", "general.name", "general.file_type", "general.size_label"}
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


def _read(fh: IO[bytes], fmt: str) -> Any:
    size = struct.calcsize(fmt)
    raw = fh.read(size)
    if len(raw) != size:
        raise ModelLoadError("GGUF header is truncated")
    return struct.unpack(fmt, raw)[0]


def _string(fh: IO[bytes]) -> str:
    n = _read(fh, "<Q")
    if n > 1 << 24:
        raise ModelLoadError("GGUF header is corrupt (string too long)")
    return fh.read(n).decode("utf-8", errors="replace")


def _value(fh: IO[bytes], vtype: int, keep: bool) -> Any:
    """Read one metadata value; arrays are decoded only when `keep` (else skipped, returning None)."""
    if vtype in _SCALARS:
        return _read(fh, _SCALARS[vtype])
    if vtype == 8:
        return _string(fh)
    if vtype == 9:
        etype, count = _read(fh, "<I"), _read(fh, "<Q")
        if etype in _SCALARS:
            fmt = _SCALARS[etype]
            nbytes = struct.calcsize(fmt) * count
            if not keep:
                fh.seek(nbytes, 1)
                return None
            raw = fh.read(nbytes)
            if len(raw) != nbytes:
                raise ModelLoadError("GGUF header is truncated")
            return list(struct.unpack(f"<{count}{fmt[1]}", raw))
        items = [_value(fh, etype, keep) for _ in range(count)]
        return items if keep else None
    raise ModelLoadError(f"GGUF header has an unknown value type {vtype}")


def read_gguf_header(path: Path, *, everything: bool = False
                     ) -> tuple[dict[str, Any], list[tuple[str, tuple[int, ...], int]]]:
    """(metadata, [(tensor name, shape, ggml type id)]). Only general.* scalars unless `everything`."""
    with open(path, "rb", buffering=1 << 16) as fh:
        if fh.read(4) != b"GGUF":
            raise ModelLoadError(f"{path.name} is not a GGUF file")
        version = _read(fh, "<I")
        if version < 2:
            raise ModelLoadError(f"{path.name}: GGUF version {version} is too old")
        n_tensors, n_kv = _read(fh, "<Q"), _read(fh, "<Q")
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = _string(fh)
            value = _value(fh, _read(fh, "<I"), everything)
            if everything or key in _WANTED:
                meta[key] = value
        tensors = []
        for _ in range(n_tensors):
            name = _string(fh)
            dims = tuple(_read(fh, "<Q") for _ in range(_read(fh, "<I")))
            tensors.append((name, dims, _read(fh, "<I")))
            fh.seek(8, 1)  # offset
    return meta, tensors


def inspect_gguf(path: Path, *, source: str = "gguf") -> ModelInfo:
    """A Library row for a GGUF file: parameters and real bits per weight from its tensor table."""
    import gguf

    path = Path(path)
    size = path.stat().st_size if path.exists() else 0
    name = path.name.removesuffix(".gguf")
    try:
        if (m := _SPLIT.search(path.name)) and int(m.group(2)) > 1:
            raise ModelLoadError(f"split GGUF ({int(m.group(2))} parts): merge it with llama-gguf-split first")
        meta, tensors = read_gguf_header(path)
    except (ModelLoadError, OSError) as exc:
        return ModelInfo(name=name, path=path, source=source, architecture="?", parameters=0, size_bytes=size,
                         quantization="gguf", bits_per_weight=0.0, error=str(exc), details={"gguf": True})
    params = total = 0
    types: Counter[str] = Counter()
    for _, dims, type_id in tensors:
        n = 1
        for d in dims:
            n *= d
        params += n
        try:
            qtype = gguf.GGMLQuantizationType(type_id)
            block, nbytes = gguf.GGML_QUANT_SIZES[qtype]
            total += n // block * nbytes
            types[qtype.name] += n
        except (ValueError, KeyError):
            types[f"type{type_id}"] += n
    main_type = types.most_common(1)[0][0] if types else "?"
    arch = str(meta.get("general.architecture", "?"))
    from .gguf_import import SUPPORTED

    return ModelInfo(
        name=name, path=path, source=source, architecture=arch, parameters=params, size_bytes=size,
        quantization=f"gguf {main_type}", bits_per_weight=total * 8 / params if params else 0.0,
        error=None if arch in SUPPORTED else f"GGUF architecture {arch!r} cannot be imported yet",
        details={"gguf": True, "tensors": len(tensors), "gguf_types": dict(types.most_common()),
                 "gguf_name": meta.get("general.name")},
    )


def gguf_files(root: Path, depth: int = 3) -> list[Path]:
    """*.gguf files under `root` up to `depth` levels (LM Studio keeps publisher/repo/file.gguf)."""
    found: list[Path] = []
    if not root.is_dir():
        return found
    for level in range(depth):
        pattern = "/".join(["*"] * level + ["*.gguf"])
        for f in sorted(root.glob(pattern)):
            if f.is_file() and not any(p.startswith(".") for p in f.relative_to(root).parts):
                m = _SPLIT.search(f.name)
                if m is None or m.group(1) == "00001":
                    found.append(f)
    return found
