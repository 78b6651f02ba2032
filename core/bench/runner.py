"""Run a benchmark suite on the engine thread: prompt × generation matrix, continuous batching, roofline.

`run_suite(ctx, lm, config)` is the one entry point: the CLI (`temper bench`) and the Performance tab
both submit it as an engine job and read its `BenchProgress` events. Every timed request uses mlx-lm's
`generate_step` directly (no EOS check: a run always generates exactly `tg` tokens) on a fresh KV cache
with a random prompt whose prefix no earlier run used, after one warm-up request per shape that is not
counted (the first call compiles kernels).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..engine.events import Progress
from ..engine.kv_bits import check_kv_bits
from ..errors import TemperError
from .metrics import RunTiming, summarize
from .prompts import PromptMaker, special_ids, vocab_size
from .results import BenchResult, Row
from .roofline import Roofline, kv_bytes, measure_bandwidth, weight_bytes


@dataclass(frozen=True)
class BenchProgress(Progress):
    """One step of a benchmark: `phase` is warmup | run | batch | bandwidth | done; `data` holds the
    last run's metrics (ttft, tpot, prefill_tps, decode_tps, ...) when there is one."""

    label: str = ""


@dataclass
class BenchConfig:
    pp: list[int] = field(default_factory=lambda: [512])
    tg: list[int] = field(default_factory=lambda: [128])
    n: int = 3
    batch: list[int] = field(default_factory=list)  # concurrency levels; empty: no batching suite
    batch_pp: int | None = None  # prompt length of batch requests (default: the first pp)
    batch_tg: int | None = None  # tokens per batch request (default: the first tg)
    warmup: bool = True
    bandwidth: bool = True  # run the measured copy test
    seed: int = 0
    kv_bits: int | None = None  # None: kv_config.json if the model has one, else float; 0: float; 4 / 8

    def validate(self) -> None:
        if not self.pp or not self.tg:
            raise TemperError("give at least one prompt length (--pp) and one generation length (--tg)")
        if any(p < 1 for p in self.pp):
            raise TemperError("prompt lengths must be at least 1 token")
        if any(t < 2 for t in self.tg):
            raise TemperError("generation lengths must be at least 2 tokens (TPOT needs two)")
        if self.n < 1:
            raise TemperError("repetitions (-n) must be at least 1")
        if any(b < 1 for b in self.batch):
            raise TemperError("batch sizes must be at least 1")
        check_kv_bits(self.kv_bits)

    def check_context(self, model_config: dict[str, Any], name: str) -> None:
        """Refuse shapes longer than the model's context before anything runs: a 100k-token prompt on a
        1k-token model would otherwise run unbounded, its memory growing, to a meaningless figure."""
        from ..engine.generate import context_limit

        limit = context_limit(model_config)
        shapes = [(p, t) for p in self.pp for t in self.tg]
        if self.batch:
            shapes.append((self.batch_pp or self.pp[0], self.batch_tg or self.tg[0]))
        p, t = max(shapes, key=sum)
        if p + t > limit:
            raise TemperError(f"--pp {p} + --tg {t} = {p + t} tokens, but {name} holds {limit} tokens of context: "
                              f"choose --pp and --tg summing to at most {limit}")

    @property
    def total_runs(self) -> int:
        per_shape = self.n + (1 if self.warmup else 0)
        return len(self.pp) * len(self.tg) * per_shape + len(self.batch)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def timed_request(ctx: Any, model: Any, prompt: list[int], tg: int, plan: Any = None) -> tuple[RunTiming, list[int]]:
    """One request: prefill `prompt`, decode exactly `tg` tokens greedily. Returns timings and tokens.
    `plan`: the KV-cache plan (core/engine/kv_cache.KVPlan; None: float, as mlx-lm builds it)."""
    import mlx.core as mx
    import psutil
    from mlx_lm.generate import generate_step

    from ..engine.kv_cache import build_cache

    mx.synchronize()
    mx.clear_cache()
    mx.reset_peak_memory()
    cache = build_cache(model, plan)
    tokens: list[int] = []
    start = time.perf_counter()
    first = now = start
    for token, _ in generate_step(mx.array(prompt), model, max_tokens=tg, prompt_cache=cache,
                                  sampler=lambda logprobs: mx.argmax(logprobs, axis=-1)):
        now = time.perf_counter()
        if not tokens:
            first = now
        tokens.append(int(token))
        ctx.check()
    end = now
    mx.synchronize()
    timing = RunTiming(
        prompt_tokens=len(prompt), generated=len(tokens), start=start, first_token=first, end=end,
        peak_memory=int(mx.get_peak_memory()), rss=int(psutil.Process().memory_info().rss),
        kv_bytes=kv_bytes(cache),
    )
    return timing, tokens


def stored_bytes(folder: Path) -> int | None:
    """Bytes of every tensor in the folder's safetensors files (headers only), or None if unreadable."""
    from ..library.safetensors_header import read_header

    try:
        return sum(t.nbytes for f in sorted(folder.glob("*.safetensors")) for t in read_header(f)[0].values()) or None
    except (TemperError, OSError):
        return None


def describe_model(lm: Any) -> dict[str, Any]:
    from .roofline import count_params

    wb = weight_bytes(lm.model, lm.config)
    params = count_params(lm.model)
    quant = lm.config.get("quantization") or {}
    stored = stored_bytes(Path(lm.path)) if getattr(lm, "path", None) else None
    return {
        "stored_bytes": stored,        # the model as it is on disk (what the Library shows)
        "stored_bpw": stored * 8 / params if stored and params else None,
        "compute": str((getattr(lm, "extra", None) or {}).get("compute", "") or ""),
        "name": lm.path.name if getattr(lm, "path", None) else "model",
        "path": str(getattr(lm, "path", "")),
        "model_type": lm.config.get("model_type"),
        "params": params,
        "weight_bytes": wb.total,
        "weight_bytes_per_token": wb.per_token,
        "bpw": wb.total * 8 / params if params else None,
        "quantization": {k: v for k, v in quant.items() if not isinstance(v, dict)} if quant else None,
        "mixed": any(isinstance(v, dict) for v in quant.values()) if quant else False,
    }


def run_suite(ctx: Any, lm: Any, config: BenchConfig) -> BenchResult:
    """The whole suite for a loaded model (`LoadedModel`-like: .model, .tokenizer, .config, .path)."""
    from mlx_lm.generate import generation_stream, wired_limit

    from ..engine.kv_config import describe, plan_for
    from . import chips
    from .batch import run_batch
    from .machine import machine_info

    config.validate()
    plan = plan_for(lm.model, getattr(lm, "path", None), config.kv_bits)
    total = config.total_runs + (1 if config.bandwidth else 0)
    done = 0

    def emit(phase: str, label: str, data: dict[str, Any] | None = None, message: str = "") -> None:
        ctx.emit(BenchProgress(ctx.job_id, phase, done, total, message or label, data or {}, label=label))

    machine = machine_info()
    chip = chips.lookup(machine.get("chip", ""), machine.get("cpu_cores"))
    measured = None
    if config.bandwidth:
        emit("bandwidth", "memory copy test")
        measured = measure_bandwidth()
        done += 1
        emit("bandwidth", "memory copy test", {"measured_gbs": measured})
    maker = PromptMaker(vocab_size(lm.model, lm.config, lm.tokenizer), special_ids(lm.tokenizer), config.seed)
    model_info = describe_model(lm)
    model_info["kv"] = describe(plan)
    rows: list[Row] = []
    with wired_limit(lm.model, [generation_stream]):
        for pp in config.pp:
            for tg in config.tg:
                label = f"pp{pp}+tg{tg}"
                if config.warmup:
                    emit("warmup", label, message=f"{label} warm-up (not counted)")
                    timed_request(ctx, lm.model, maker.make(pp), tg, plan)
                    done += 1
                runs: list[RunTiming] = []
                for i in range(config.n):
                    emit("run", label, message=f"{label} run {i + 1}/{config.n}")
                    timing, _ = timed_request(ctx, lm.model, maker.make(pp), tg, plan)
                    runs.append(timing)
                    done += 1
                    emit("run", label, {**timing.metrics(), "prompt_tokens": pp, "generated": tg},
                         message=f"{label} run {i + 1}/{config.n}")
                stats = summarize(runs)
                roof = Roofline(
                    weight_bytes=model_info["weight_bytes_per_token"],
                    kv_bytes=_mean_kv(runs),
                    table_gbs=chip.bandwidth_gbs if chip else None,
                    measured_gbs=measured,
                    decode_tps=stats["decode_tps"].mean,
                    chip=chip.name if chip else "",
                    source=chip.source if chip else "",
                )
                rows.append(Row(pp=pp, tg=tg, runs=runs, roofline=roof))
        batch_rows = []
        if config.batch:
            def on_batch(k: int, data: dict[str, Any]) -> None:
                nonlocal done
                done += 1
                emit("batch", f"{k}x", data, message=f"batch {k}x")

            batch_rows = run_batch(ctx, lm.model, maker, config.batch, config.batch_pp or config.pp[0],
                                   config.batch_tg or config.tg[0], repeats=config.n, warmup=config.warmup,
                                   on_done=on_batch)
    result = BenchResult(
        model=model_info, machine=machine, config=config.to_dict(), rows=rows, batch=batch_rows,
        bandwidth={"chip": chip.name if chip else None, "table_gbs": chip.bandwidth_gbs if chip else None,
                   "source": chip.source if chip else None, "measured_gbs": measured},
    )
    emit("done", "done")
    return result


def bench_job(model: str, config: BenchConfig) -> Any:
    """The engine job for `temper bench MODEL` and the Performance tab: load (cached), then run the suite."""
    config.validate()

    def job(ctx: Any) -> BenchResult:
        from ..engine.models import ensure_loaded

        lm = ensure_loaded(ctx.state, model)
        config.check_context(lm.config, lm.name)
        return run_suite(ctx, lm, config)

    return job


def _mean_kv(runs: list[RunTiming]) -> int:
    """Mean KV bytes read per decode step: the cache grows linearly from prompt to prompt + generated,
    so the mean context is prompt + generated / 2 and the bytes scale with it."""
    if not runs:
        return 0
    r = runs[0]
    end_ctx = r.prompt_tokens + r.generated
    mean_ctx = r.prompt_tokens + r.generated / 2
    return int(sum(x.kv_bytes for x in runs) / len(runs) * mean_ctx / end_ctx)
