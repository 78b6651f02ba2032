"""Block replay: stand-ins put in place of a model's transformer blocks for one call.

A quantized tensor of block i leaves blocks 0..i-1 unchanged, so passes after the reference can replay
their recorded outputs (reference.Reference) and the streamed pass can run the model's own head on a given final
hidden state (streamed.py). Stand-ins look like the block they replace (attributes pass through).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


class StandIn:
    """Looks like the block it replaces (attributes such as `use_sliding` pass through)."""

    def __init__(self, layer: Any):
        self.layer = layer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.layer, name)


@lru_cache(maxsize=1)
def module_stand_in() -> Any:
    """An mlx.nn.Module base for stand-ins that must stay modules (capture passes that walk parameters): it
    holds the block as its child `inner`, and attributes the model reads on a block (use_sliding...) pass
    through to it."""
    import mlx.nn as nn

    class ModuleStandIn(nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            try:
                return super().__getattr__(name)
            except AttributeError:
                if "inner" not in self:
                    raise
                return getattr(self["inner"], name)

    return ModuleStandIn


class Recorder(StandIn):
    def __init__(self, layer: Any, outs: list[Any]):
        super().__init__(layer)
        self.outs = outs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.layer(*args, **kwargs)
        self.outs.append(out)
        return out


class Replay(StandIn):
    def __init__(self, layer: Any, out: Any):
        super().__init__(layer)
        self.out = out

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.out


class swapped:
    """Put stand-ins into the model's block list for the duration of one call."""

    def __init__(self, layers: list[Any], stand_ins: dict[int, Any]):
        self.layers, self.stand_ins, self.saved = layers, stand_ins, {}

    def __enter__(self) -> None:
        for j, s in self.stand_ins.items():
            self.saved[j] = self.layers[j]
            self.layers[j] = s

    def __exit__(self, *exc: Any) -> None:
        for j, layer in self.saved.items():
            self.layers[j] = layer
