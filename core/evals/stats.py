"""Intervals and the capability score."""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (sound at 0 and n, unlike the normal approximation)."""
    if n <= 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def capability(accuracies: Sequence[float]) -> float:
    """The mean accuracy over the tasks run (each task weighs the same, whatever its size)."""
    return sum(accuracies) / len(accuracies) if accuracies else float("nan")
