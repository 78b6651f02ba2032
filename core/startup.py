"""What a temper process does before anything loads mlx-lm: keep PyTorch out of it.

mlx-lm's loader imports transformers for its tokenizers, and transformers imports PyTorch at once wherever it
is installed (`transformers.utils.generic`), though neither temper nor a tokenizer runs a line of it. On the
GPU machine of docs/benchmarks/quantize_gpu.md that import took 5.7 s of a 21.8 s SmolLM2 quantization;
every command that loads a model, and the app's first model, paid it.

`keep_torch_out()` marks `torch` as absent in `sys.modules` (an entry of None: `import torch` raises
ImportError and `importlib.util.find_spec` says there is none, which is how transformers asks), so transformers
takes its no-PyTorch path: tokenizers, configurations and chat templates only. Only the `temper` entry point
calls it; code that imports temper as a library keeps its PyTorch. `TEMPER_TORCH=1` turns it off (a
tokenizer whose own code needs PyTorch: trust_remote_code).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping

ENV = "TEMPER_TORCH"


def keep_torch_out(modules: MutableMapping[str, object] | None = None,
                   environ: Mapping[str, str] | None = None) -> bool:
    """Mark torch absent for this process unless it is already imported or TEMPER_TORCH=1. Returns whether
    it did."""
    modules = sys.modules if modules is None else modules
    environ = os.environ if environ is None else environ
    if environ.get(ENV, "") not in ("", "0") or "torch" in modules:
        return False
    modules["torch"] = None
    return True
