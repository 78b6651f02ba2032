"""`temper eval BASE QUANT [QUANT...]`: held-out KL, top-1 agreement and perplexity against the base, one table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..core.errors import QuantError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="compare quantized models with their base on held-out text",
                       description="KL(base || quant) per token (mean ± SE, median, p95, p99, max), top-1 "
                                   "agreement, perplexity of both, real bpw and size. Models run one at a time.")
    p.add_argument("base", help="the unquantized model folder")
    p.add_argument("quants", nargs="+", metavar="QUANT", help="quantized model folders of the same base")
    p.add_argument("--compare", action="store_true", help="one table over all QUANTs (the default output)")
    p.add_argument("--text", type=Path, help="evaluation text (.txt, or .jsonl records); default: temper's "
                                             "held-out set, kept apart from calibration text")
    p.add_argument("--chunks", type=int, default=16, help="number of chunks (default 16)")
    p.add_argument("--chunk-len", type=int, default=256, help="tokens per chunk (default 256)")
    p.add_argument("--json", action="store_true", help="print rows as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the table (no progress)")
    p.set_defaults(func=run, on_interrupt="nothing written")


def eval_chunks(tokenizer: Any, *, text: Path | None, count: int, length: int) -> tuple[list[list[int]], str]:
    """Held-out chunks and a line saying what they are: temper's evaluation set, or the user's text."""
    from ..core.quant.evaluate import text_chunks

    try:
        from ..core.quant.calibration import evaluation_set  # type: ignore[import-not-found,attr-defined]
    except ImportError:
        evaluation_set = None
    if evaluation_set is not None:
        tokens = evaluation_set(tokenizer, samples=count, seq_len=length, source=text)
        return [list(map(int, row)) for row in tokens.chunks], tokens.describe()
    if text is None:
        raise QuantError("pass --text FILE: this build has no built-in evaluation text")
    try:
        raw = text.read_text()
    except OSError as exc:
        raise QuantError(f"cannot read {text}: {exc}") from exc
    if text.suffix == ".jsonl":
        raw = "\n\n".join(json.loads(line).get("text", "") for line in raw.splitlines() if line.strip())
    chunks = text_chunks(tokenizer, raw, length=length, count=count)
    return chunks, f"evaluation: {text.name}, {len(chunks)} x {length} tokens"


def run(args: argparse.Namespace) -> int:
    from ..core.engine import get_engine
    from ..core.quant.evaluate import evaluate, format_table

    if args.chunks < 1 or args.chunk_len < 2:
        raise QuantError("--chunks must be ≥ 1 and --chunk-len ≥ 2")
    from ..core.engine.loader import open_tokenizer, validate

    for folder in [args.base, *args.quants]:
        validate(Path(folder))

    def job(ctx: Any) -> tuple[list[Any], str]:
        tokenizer = open_tokenizer(Path(args.base))
        chunks, about = eval_chunks(tokenizer, text=args.text, count=args.chunks, length=args.chunk_len)
        return evaluate(ctx, Path(args.base), [Path(q) for q in args.quants], chunks), about

    from .progress import follow

    rows, about = follow(get_engine().submit(job, kind="eval"), quiet=args.json or args.quiet)
    if args.json:
        print(json.dumps({"text": about, "rows": [r.to_dict() for r in rows]}, indent=1))
    else:
        print(about)
        print(format_table(rows))
    return 0
