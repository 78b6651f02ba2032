"""Helpers for the quantization tests: held-out token chunks and an exact per-tensor score table."""

from __future__ import annotations

from pathlib import Path

HELD_OUT = """The lighthouse keeper wrote down the weather every morning: wind from the west, light rain,
visibility four miles. def merge(a, b):\n    return sorted(a + b)\nTwelve apples cost three euros;
how much do twenty apples cost? Five euros. {"tool": "search", "arguments": {"query": "tide tables"}}
La mer était calme ce matin-là, et les bateaux rentraient au port avant midi. The committee met again
on Thursday and agreed to postpone the vote until the budget figures had been checked twice."""


def chunks_for(path: Path, *, length: int = 48, count: int = 3) -> list[list[int]]:
    from mlx_lm.utils import load_tokenizer
    from temper.core.quant.evaluate import text_chunks

    tok = load_tokenizer(Path(path))
    return text_chunks(tok, HELD_OUT * 3, length=length, count=count)


def scored_table(path: Path, candidates, *, length: int = 48, count: int = 2):
    """Inventory of the model at `path` filled with exact ΔKL scores (engine thread only)."""
    from mlx_lm.utils import load_model
    from temper.core.quant.exact import exact_scores
    from temper.core.quant.inventory import inventory

    model, _ = load_model(Path(path))
    table = inventory(model, name=str(path))
    return exact_scores(model, table, chunks_for(path, length=length, count=count), candidates)
