"""Quantization candidates: one (bits, group size, mode) choice for a tensor, and what it costs in bytes.

The allocator's budget is in *real* bits per weight, so every candidate knows its true storage cost:
packed weights plus per-group scales (and biases for affine, which are stored in the model's float
dtype: 2 bytes for bf16/fp16, 4 for fp32, which is how a float32 model silently gains 0.5 bpw at gs 64).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import QuantError

AFFINE_BITS = (2, 3, 4, 5, 6, 8)
AFFINE_GROUPS = (32, 64, 128)
# Fixed-format modes: mode -> (bits, group size, bytes of scale per group)
FIXED_MODES = {"mxfp4": (4, 32, 1), "nvfp4": (4, 16, 1), "mxfp8": (8, 32, 1)}
MODES = ("affine", *FIXED_MODES)


@dataclass(frozen=True, order=True)
class Candidate:
    bits: int
    group_size: int
    mode: str = "affine"

    def __post_init__(self) -> None:
        if self.mode == "affine":
            if self.bits not in (1, *AFFINE_BITS):
                raise QuantError(f"affine mode has no {self.bits}-bit width (choose from 2,3,4,5,6,8)")
            if self.group_size not in AFFINE_GROUPS:
                raise QuantError(f"affine group size must be 32, 64 or 128, not {self.group_size}")
        elif self.mode in FIXED_MODES:
            bits, group, _ = FIXED_MODES[self.mode]
            if (self.bits, self.group_size) != (bits, group):
                raise QuantError(f"{self.mode} is {bits}-bit with group size {group} only")
        else:
            raise QuantError(f"unknown quantization mode {self.mode!r} (choose from {', '.join(MODES)})")

    @property
    def key(self) -> str:
        """Stable text key, e.g. 'affine:4b:g64', used in JSON files and tables."""
        return f"{self.mode}:{self.bits}b:g{self.group_size}"

    @classmethod
    def from_key(cls, key: str) -> Candidate:
        try:
            mode, bits, group = key.split(":")
            return cls(int(bits.rstrip("b")), int(group.lstrip("g")), mode)
        except ValueError as exc:
            raise QuantError(f"bad candidate key {key!r} (expected e.g. 'affine:4b:g64')") from exc

    def bits_per_weight(self, float_bytes: int = 2) -> float:
        """Real storage bits per weight, scales and biases included (float_bytes: dtype of affine scales)."""
        if self.mode == "affine":
            return self.bits + 2 * 8 * float_bytes / self.group_size
        _, group, scale_bytes = FIXED_MODES[self.mode]
        return self.bits + 8 * scale_bytes / group

    def fits(self, shape: tuple[int, ...]) -> bool:
        """Can a weight of this shape (out, in) be quantized this way? The last dim must split into groups."""
        return len(shape) >= 2 and shape[-1] % self.group_size == 0

    def as_config(self) -> dict[str, object]:
        """The per-path entry mlx-lm's config.json 'quantization' section expects."""
        return {"group_size": self.group_size, "bits": self.bits, "mode": self.mode}

    def __str__(self) -> str:
        if self.mode == "affine":
            return f"{self.bits}b g{self.group_size}"
        return self.mode


def grid(
    bits: Iterable[int] = AFFINE_BITS,
    group_sizes: Iterable[int] = (64,),
    modes: Iterable[str] = ("affine",),
) -> list[Candidate]:
    """All candidates for the chosen widths × group sizes × modes (fixed modes ignore bits/groups)."""
    out: set[Candidate] = set()
    for mode in modes:
        if mode == "affine":
            out.update(Candidate(b, g, "affine") for b in bits for g in group_sizes)
        elif mode in FIXED_MODES:
            b, g, _ = FIXED_MODES[mode]
            out.add(Candidate(b, g, mode))
        else:
            raise QuantError(f"unknown quantization mode {mode!r} (choose from {', '.join(MODES)})")
    if not out:
        raise QuantError("no quantization candidates: choose at least one width and mode")
    return sorted(out, key=lambda c: (c.bits_per_weight(), c.key))
