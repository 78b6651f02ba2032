"""Does the in-memory sensitivity pass fit? One rule, used by the core (which streams when it does not)
and by the app's preflight (which says so before the run): the model in fp32 times a working margin,
against the memory available now."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MARGIN = 1.5          # fp32 weights plus working room (activations, one quantized block, the reference)


@dataclass(frozen=True)
class PassMemory:
    needed_bytes: int
    free_bytes: int

    @property
    def streamed(self) -> bool:
        return self.needed_bytes > self.free_bytes


def pass_memory(path: Path, margin: float = MARGIN) -> PassMemory:
    import psutil

    from .streamed import fp32_bytes

    return PassMemory(int(fp32_bytes(Path(path)) * margin), int(psutil.virtual_memory().available))
