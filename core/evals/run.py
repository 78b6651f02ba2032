"""The eval job: each model (the float base first, then each quant) on each task, cached per
(model content, task, settings). Runs on the engine thread; emits Progress with an ETA per phase."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import cache, prompts, tasks
from .extract import cut_at_stops, gsm8k_answer, gsm8k_correct, humaneval_program, mmlu_choice
from .loops import LOOP, LoopRule
from .sandbox import Limits, isolation, run_program
from .stats import capability, wilson

# Generation caps: GSM8K 256 (lm-eval's); HumanEval 300, above the longest canonical solution (268 tokens
# in SmolLM2's tokenizer, 95% under 140): a longer completion is a loop that fails anyway.
MAX_TOKENS = {"humaneval": 300, "gsm8k": 256, "mmlu": 1, "mmlu_cloze": 0}
# Sequences decoded together, per task, unless --batch says otherwise. On a CPU a decode step costs a fixed
# ~0.1 s (reading the weights) plus ~7 ms per row past ~32 rows (docs/benchmarks/capability.md), so what
# a task pays for is its number of steps. HumanEval (0-shot, most completions end within a few tokens, a
# few run to the cap): all 164 at once, so the long ones decode side by side instead of one after another
# in a tail. GSM8K: 64 (a full step is compute-bound, 128 rows cost about the same per row). Every task's
# batch is capped by memory (memory.py) in batched.generate.
BATCH = {"humaneval": 192, "gsm8k": 64, "mmlu": 64, "mmlu_cloze": 64}
SANDBOX_WORKERS = 2          # HumanEval programs run at once, overlapping generation


@dataclass(frozen=True)
class EvalSettings:
    tasks: tuple[str, ...] = ("humaneval", "gsm8k", "mmlu")
    limit: int | None = None
    batch: int | None = None            # sequences decoded together (None: BATCH per task; not in the cache key)
    limits: Limits = Limits()           # HumanEval sandbox
    max_new: int | None = None          # cap on generated tokens (default: MAX_TOKENS per task)
    exact: bool = False                 # decode looping GSM8K completions to the end (no loops.py shortcut)

    @property
    def loops(self) -> LoopRule | None:
        return None if self.exact else LOOP

    def batch_for(self, task: str) -> int:
        return self.batch or BATCH[task]

    def max_tokens(self, task: str) -> int:
        return min(MAX_TOKENS[task], self.max_new) if self.max_new else MAX_TOKENS[task]

    def task_settings(self, task: str) -> dict[str, Any]:
        limit = self.limit if self.limit is not None and self.limit < tasks.count(task) else None
        out: dict[str, Any] = {"task": task, "limit": limit, "max_tokens": self.max_tokens(task),
                               "compute": compute_mode(),
                               "format": prompts.FORMAT_VERSION, "data": tasks.data_hash(task)}
        if task == "humaneval":
            out["sandbox"] = asdict(self.limits)
        if task == "gsm8k":
            out["loops"] = self.loops.key() if self.loops else "off"   # loops.py's shortcut, or none
        return out


@dataclass
class TaskResult:
    task: str
    n: int
    correct: int
    seconds: float
    settings: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    cached: bool = False

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.correct, self.n)

    def to_dict(self, records: bool = True) -> dict[str, Any]:
        low, high = self.interval
        out = {"task": self.task, "n": self.n, "correct": self.correct, "accuracy": self.accuracy,
               "low": low, "high": high, "seconds": self.seconds, "cached": self.cached,
               "settings": self.settings}
        if records:
            out["records"] = self.records
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskResult:
        return cls(d["task"], int(d["n"]), int(d["correct"]), float(d["seconds"]), dict(d["settings"]),
                   list(d.get("records", [])), bool(d.get("cached", False)))


@dataclass
class ModelEval:
    name: str
    path: str
    role: str                            # "float" (the base) or "quant"
    results: dict[str, TaskResult] = field(default_factory=dict)

    @property
    def capability(self) -> float:
        return capability([r.accuracy for r in self.results.values()])

    def to_dict(self, records: bool = False) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "role": self.role, "capability": self.capability,
                "tasks": {t: r.to_dict(records) for t, r in self.results.items()}}


class Ticker:
    """Progress with an ETA (core/engine/eta.py's rule), at most a few events a second."""

    def __init__(self, ctx: Any, phase: str, total: int):
        from ..engine.eta import EtaClock

        self.ctx, self.phase, self.total = ctx, phase, total
        self.clock = EtaClock()
        self.start = time.perf_counter()
        self.last = 0.0
        self(0, total)

    def __call__(self, done: int, total: int) -> None:
        if self.ctx is None:
            return
        from ..engine.events import Progress

        now = time.perf_counter()
        eta = self.clock.estimate(self.phase, done, total)     # every step counts, said or not
        if done not in (0, total) and now - self.last < 0.25:
            return
        self.last = now
        elapsed = now - self.start
        self.ctx.emit(Progress(self.ctx.job_id, self.phase, done, total, "",
                               {"eta_s": eta, "elapsed_s": elapsed}))


def _gen(model: Any, tokenizer: Any, ps: list[prompts.Prompt], ctx: Any, phase: str, settings: EvalSettings,
         task: str, **kw: Any) -> list[Any]:
    from . import batched

    check = ctx.check if ctx is not None else (lambda: None)
    return batched.generate(model, tokenizer, ps, batch=settings.batch_for(task), check=check,
                            progress=Ticker(ctx, phase, len(ps)), **kw)


def run_task(ctx: Any, model: Any, tokenizer: Any, task: str, settings: EvalSettings, label: str) -> TaskResult:
    """One task on one loaded model (no cache)."""
    start = time.perf_counter()
    items = tasks.problems(task, settings.limit)
    phase = f"{label} {task}"
    records: list[dict[str, Any]] = []
    if task == "gsm8k":
        outs = _gen(model, tokenizer, [prompts.gsm8k(p) for p in items], ctx, phase, settings, task,
                    max_tokens=settings.max_tokens(task), stops=prompts.GSM8K_STOPS, done=prompts.GSM8K_DONE,
                    loops=settings.loops)
        for p, text in zip(items, outs, strict=True):
            text = cut_at_stops(text, prompts.GSM8K_STOPS)
            records.append({"id": p.id, "want": p.answer, "got": gsm8k_answer(text),
                            "ok": gsm8k_correct(text, p.answer), "text": text})
    elif task == "mmlu":
        from .batched import letter_ids

        shots, _ = tasks.mmlu_split()
        outs = _gen(model, tokenizer, [prompts.mmlu(p, shots) for p in items], ctx, phase, settings, task,
                    max_tokens=1, want_logprobs=letter_ids(tokenizer))
        for p, lps in zip(items, outs, strict=True):
            got = mmlu_choice(lps)
            records.append({"id": p.id, "want": p.answer, "got": got, "ok": got == p.answer})
    elif task == "mmlu_cloze":
        from .loglik import pick, score_items

        asked = [prompts.mmlu_cloze(p) for p in items]
        check = ctx.check if ctx is not None else (lambda: None)
        scores = score_items(model, tokenizer, asked, check=check, progress=Ticker(ctx, phase, len(asked)))
        for p, (_, choices), lps in zip(items, asked, scores, strict=True):
            got = prompts.LETTERS[pick(lps, choices)]
            records.append({"id": p.id, "want": p.answer, "got": got, "ok": got == p.answer})
    else:
        records = humaneval(ctx, model, tokenizer, items, settings, label)
    correct = sum(1 for r in records if r["ok"])
    return TaskResult(task, len(records), correct, time.perf_counter() - start, settings.task_settings(task), records)


def humaneval(ctx: Any, model: Any, tokenizer: Any, items: Sequence[tasks.Problem], settings: EvalSettings,
              label: str) -> list[dict[str, Any]]:
    """Generate every completion and run each in the sandbox as soon as it is final: SANDBOX_WORKERS
    programs at a time, beside the decoding (a program's subprocess mostly waits on its own start-up)."""
    stops = prompts.HUMANEVAL_STOPS
    futures: dict[int, Future[Any]] = {}
    pool = ThreadPoolExecutor(max_workers=SANDBOX_WORKERS)
    try:

        def submit(i: int, text: str) -> None:
            p = items[i]
            program = humaneval_program(p.question, cut_at_stops(text, stops), p.extra["test"], p.extra["entry_point"])
            futures[i] = pool.submit(run_program, program, settings.limits)

        outs = _gen(model, tokenizer, [prompts.humaneval(p) for p in items], ctx, f"{label} humaneval", settings,
                    "humaneval", max_tokens=settings.max_tokens("humaneval"), stops=stops, on_done=submit)
        ticker = Ticker(ctx, f"{label} humaneval sandbox", len(items))
        records: list[dict[str, Any]] = []
        for i, (p, text) in enumerate(zip(items, outs, strict=True)):
            if ctx is not None:
                ctx.check()
            outcome = futures[i].result()
            records.append({"id": p.id, "ok": outcome.passed, "status": outcome.status, "detail": outcome.detail,
                            "text": cut_at_stops(text, stops)})
            ticker(i + 1, len(items))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)   # a stopped job runs no more programs
    return records


def evaluate_models(ctx: Any, base: Path | None, quants: Sequence[Path], settings: EvalSettings,
                    *, loader: Callable[[Path], tuple[Any, Any]] | None = None) -> list[ModelEval]:
    """Engine job body: every model on every task; a cached result is reused and its model not loaded."""
    from ..quant.tensors import model_hash

    for t in settings.tasks:
        tasks.data_file(t)                          # a missing data package fails before any work
    if "humaneval" in settings.tasks:
        isolation()
    load = loader or _load
    models = ([(Path(base), "float")] if base is not None else []) + [(Path(q), "quant") for q in quants]
    out: list[ModelEval] = []
    for path, role in models:
        ev = ModelEval(path.name, str(path), role)
        mhash = model_hash(path)
        loaded: tuple[Any, Any] | None = None
        for task in settings.tasks:
            k = cache.key(mhash, settings.task_settings(task))
            hit = cache.load(k)
            if hit is not None:
                result = TaskResult.from_dict(hit)
                result.cached = True
            else:
                if loaded is None:
                    loaded = load(path)
                result = run_task(ctx, loaded[0], loaded[1], task, settings, path.name)
                cache.save(k, result.to_dict())
            ev.results[task] = result
        out.append(ev)
        if loaded is not None:
            del loaded
            _free()
    return out


def compute_mode() -> str:
    """What evals compute in (part of the cache key): on MLX's CPU backend with a fast BLAS, fp32 for every
    model (quantized layers dequantized: the same weights; bf16 and quantized kernels there run ~25x
    slower, core/accel/compute.py), so the float base and its quants are run alike; else native."""
    from ..accel.compute import fast_blas, on_cpu_backend

    return "fp32" if on_cpu_backend() and fast_blas() else "native"


def _load(path: Path) -> tuple[Any, Any]:
    from ..engine.loader import load

    loaded = load(path, compute=compute_mode())
    return loaded.model, loaded.tokenizer


def _free() -> None:
    import mlx.core as mx

    mx.clear_cache()
