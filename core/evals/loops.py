"""Greedy repetition loops: a completion whose last tokens are one short block repeated many times.

A small model often falls into such a loop ("She makes 16 * 10 = 160 eggs. She makes 16 * 10 = 160 eggs.
...") and then decodes to the generation cap: on SmolLM2-135M's GSM8K 500, 42 (float) and 105 (4-bit) of
the completions ran to the 256-token cap, 44% and 73% of all decoded tokens, and they are the batch's
long tail. Once a block of `period` tokens has repeated REPEATS times over at least SPAN tokens, the row
is finished by repeating that block to the cap (with the same stop checks as decoding) instead of running
the model: the text is what greedy decoding gives if the loop holds. Checked on session 4's recorded
GSM8K 500 completions (float and 4-bit, 1000 rows): the rule fired on 112 rows, saved 16k decoded tokens
and changed no extracted answer; 3 repeats / 24 tokens changed 4. The 3-bit model's loops break late more
often: 5 of its 500 answers moved (none across right/wrong; docs/benchmarks/capability.md, session 5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LoopRule:
    repeats: int = 5          # the block occurs this many times in a row at the end
    span: int = 40            # ... covering at least this many tokens (short blocks need more repeats)
    max_period: int = 64      # longest block looked for

    def key(self) -> str:
        """For the result cache key: the rule changes what a looping completion reads."""
        return f"{self.repeats}x{self.span}/{self.max_period}"


LOOP = LoopRule()


def period(tokens: Sequence[int], rule: LoopRule = LOOP) -> int | None:
    """The shortest block length p such that the last tokens are that block repeated at least
    max(rule.repeats, ceil(rule.span / p)) times; None if there is none."""
    n = len(tokens)
    last = tokens[-1] if n else None
    for p in range(1, rule.max_period + 1):
        k = max(rule.repeats, -(-rule.span // p))
        if k * p > n:
            continue
        if tokens[n - 1 - p] != last:
            continue
        block = list(tokens[n - p:])
        if all(list(tokens[n - (j + 1) * p:n - j * p]) == block for j in range(1, k)):
            return p
    return None
