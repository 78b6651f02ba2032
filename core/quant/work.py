"""What each step of a long quantization phase costs, in work units: the weights of its progress ETA.

The ETA (core/engine/eta.py) divides the work left by the rate so far; counting unlike steps as equal
makes the first expensive steps extrapolate to everything (SmolLM2-135M's fast pass on a 2-core CPU read
"eta 25m" while its 16 Fisher sequences ran, then scored its 211 tensors in under a minute:
docs/benchmarks/progress_eta.md). Units only need to be proportional to time within one phase; the
constants below are ratios measured there (SmolLM2-135M, the 2-core CPU, `temper quantize --bpw 4.5`).

- Fisher pass (estimate.py): a calibration sequence is a forward and a backward pass of the model,
  `params × tokens`; scoring a tensor is `SCORE_COST × elements × candidates` in the same unit: element-wise
  kernels, not matrix products (a 256-token sequence took 6.6 and 8.4 s in two runs, scoring the model's
  1.77e9 elements × candidates 58 and 53 s: ratios 170 and 122).
- exact pass (sensitivity_run.py): a tensor costs one forward pass per candidate from the first block its
  change can reach (earlier blocks are replayed), plus the head: `candidates × (blocks from there + 1)`.
- quantize (write.py): a GPTQ tensor is `rows × cols²` (its column loop: each column updates the rest of its
  row) plus its share of the block's forward pass and input statistics, `FORWARD_SHARE × rows × cols ×
  tokens` (per block 2.6 s: 0.6 s for the 576 × 1536 down_proj, 0.1 s for a 576 × 576 o_proj, 1.6 s for the
  block's forward and the two 1536 × 576 it rounds first); a tensor rounded to nearest with the clip
  search is `ROUND_COST × rows × cols` (the 49152 × 576 embedding: 3.3 s).
"""

from __future__ import annotations

from collections.abc import Sequence

SCORE_COST = 145.0       # one element × candidate scored, in params × tokens of a Fisher sequence
FORWARD_SHARE = 0.18     # a calibration token through a tensor, in GPTQ column-loop units
ROUND_COST = 270.0       # one element rounded to nearest with the clip search, in the same units


def fisher_steps(params: int, tokens: Sequence[int], scored: Sequence[tuple[int, int]]) -> list[float]:
    """Per step of a Fisher pass, its cost: each sequence (`tokens` each), then each tensor scored
    ((elements it scores, candidates fitting it))."""
    return [float(params * t) for t in tokens] + [SCORE_COST * e * max(1, c) for e, c in scored]


def exact_tensor(candidates: int, first_block: int | None, blocks: int) -> float:
    """One tensor's exact KL: a forward pass per candidate from `first_block` (None: from the embeddings)."""
    start = 0 if first_block is None else min(first_block, blocks)
    return float(candidates * (blocks - start + 1))


def gptq_tensor(rows: int, cols: int, tokens: int) -> float:
    """One tensor rounded with GPTQ on `tokens` calibration tokens."""
    return float(rows) * cols * (cols + FORWARD_SHARE * tokens)


def rounded_tensor(rows: int, cols: int, clip: bool = True) -> float:
    """One tensor rounded to nearest (without the clip search: one grid of its eleven, mx.quantize's)."""
    return ROUND_COST * rows * cols / (1 if clip else 11)


class Tally:
    """A phase's work: `add(cost)` after each step -> the `data` its Progress carries (work done, total)."""

    def __init__(self, total: float) -> None:
        self.total = float(total)
        self.done = 0.0

    def add(self, cost: float) -> dict[str, float]:
        from ..engine.eta import units

        self.done = min(self.total, self.done + cost)
        return units(self.done, self.total)
