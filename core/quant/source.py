"""The quantizer's source must be a float model: one already quantized is refused with what to do instead."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import QuantError


def already_quantized(path: Path) -> QuantError:
    """The one-line refusal the CLI and the app show for a quantized source: it names the way out."""
    from ..library.float_copy import existing_copy, source_gguf

    path = Path(path)
    if (copy := existing_copy(path)) is not None:
        fix = f"quantize its float copy {copy} instead"
    elif (gguf := source_gguf(path)) is not None:
        fix = (f"make a float copy first: temper library float-copy {path} "
               f"(same as temper library import {gguf} --dequantize)")
    else:
        fix = f"make a float copy first: temper library float-copy {path} (a GGUF: import it with --dequantize)"
    return QuantError(f"{path.name} is already quantized (quantizing it again compounds the error): {fix}; "
                      "in the app, press f on step 1 of Quantize")


def require_float(path: Path) -> None:
    """Raise `already_quantized` unless `path`'s config.json says the model is unquantized."""
    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return           # the loader reports a missing or broken folder in its own words
    if config.get("quantization") or config.get("quantization_config"):
        raise already_quantized(Path(path))
