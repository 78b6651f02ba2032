"""What the Library knows about one model, without loading its weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ModelInfo:
    name: str                  # display name: Hub id or folder name
    path: Path                 # the folder holding config.json and the weights
    source: str                # "hf-cache" | "folder" | "temper" | "hub" (remote, not downloaded)
    architecture: str          # config model_type, e.g. "llama", "gemma4"
    parameters: int            # parameter count (quantized weights counted unpacked)
    size_bytes: int            # bytes on disk of all weight files
    quantization: str          # "none" | "uniform 4-bit" | "mixed" | "mxfp4" ...
    bits_per_weight: float     # real bpw: all tensor bytes * 8 / parameters
    vision: bool = False
    error: str | None = None   # set when the folder is broken: the one-line reason
    details: dict[str, object] = field(default_factory=dict)
