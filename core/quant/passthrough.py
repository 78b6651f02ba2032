"""Vision and audio towers of a vision-language checkpoint: carried into the quantized folder unchanged.

mlx-lm loads the language model of a VLM checkpoint (Gemma-4 with a vision tower, model_type gemma4)
and drops the towers and their projectors while sanitizing, so a folder written from the loaded model
alone would lose them. Here every source tensor whose name marks it as float-only (inventory.FLOAT_ONLY:
vision_tower, embed_vision, multi_modal_projector, audio_tower...) is copied byte for byte, under its
original name and dtype, into `model-towers.safetensors` and added to the index, so a VLM loader finds
it where it was; mlx-lm keeps dropping it, so the text model loads as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .inventory import is_float_only

FILE = "model-towers.safetensors"
INDEX = "model.safetensors.index.json"


@dataclass
class Towers:
    names: list[str] = field(default_factory=list)
    nbytes: int = 0
    dtypes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        prefixes = sorted({n.split(".")[1] if n.startswith("model.") else n.split(".")[0] for n in self.names})
        return (f"{', '.join(prefixes)}: {len(self.names)} tensors, {self.nbytes / 1e6:.2f} MB, kept in "
                f"{'/'.join(self.dtypes)} under their original names (not quantized; mlx-lm ignores them, "
                "a VLM loader finds them)")


def tower_tensors(folder: Path) -> dict[str, list[str]]:
    """safetensors file -> names of its float-only tensors."""
    from ..library.safetensors_header import read_header

    out: dict[str, list[str]] = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        names = [n for n in read_header(f)[0] if is_float_only(n)]
        if names:
            out[f.name] = names
    return out


def tower_bytes(folder: Path) -> int:
    from ..library.safetensors_header import read_header

    return sum(info.nbytes for f in sorted(Path(folder).glob("*.safetensors"))
               for name, info in read_header(f)[0].items() if is_float_only(name))


def copy_towers(source: Path, dest: Path) -> Towers:
    """Copy the source's float-only tensors into `dest` (a folder mlx-lm's save_model just wrote)."""
    import mlx.core as mx

    found = tower_tensors(source)
    if not found:
        return Towers()
    tensors = {}
    for fname, names in found.items():
        arrays = mx.load(str(Path(source) / fname))
        tensors.update({n: arrays[n] for n in names})
    mx.save_safetensors(str(Path(dest) / FILE), tensors, metadata={"format": "mlx"})
    index_path = Path(dest) / INDEX
    if index_path.is_file():
        index = json.loads(index_path.read_text())
        index.setdefault("weight_map", {}).update({n: FILE for n in tensors})
        index.setdefault("metadata", {})["total_size"] = (
            index.get("metadata", {}).get("total_size", 0) + sum(v.nbytes for v in tensors.values()))
        index_path.write_text(json.dumps(index, indent=4))
    dtypes = sorted({str(v.dtype).removeprefix("mlx.core.") for v in tensors.values()})
    return Towers(sorted(tensors), sum(v.nbytes for v in tensors.values()), dtypes)
