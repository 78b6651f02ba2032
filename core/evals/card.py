"""Capability figures in the model card temper writes (README.md of a quantized folder)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .. import atomic
from .report import markdown
from .run import ModelEval

HEADING = "## Capability"


def capability_section(models: Sequence[ModelEval]) -> str:
    return (f"{HEADING}\n\nTask accuracy of this model beside its unquantized base (greedy decoding, "
            f"measured by temper):\n\n{markdown(models)}")


def add_capability_to_card(out: Path, models: Sequence[ModelEval]) -> None:
    """Append (or replace) the Capability section of `out`/README.md, atomically."""
    card = Path(out) / "README.md"
    text = card.read_text() if card.is_file() else ""
    if HEADING in text:
        text = text[:text.index(HEADING)].rstrip() + "\n"
    atomic.write_text(card, text.rstrip() + "\n\n" + capability_section(models))
