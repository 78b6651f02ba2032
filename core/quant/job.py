"""The phases of one quantization: calibration → scores → plan → write → verify (→ evaluate).

`run_phases(ctx, request, record)` is called by `pipeline.quantize` (the one entry, always under a job
record) on the engine thread. Each phase emits `Progress(job, phase, done, total, message)` with phase in:
inventory, sensitivity, allocate, write, verify, evaluate. The written folder is verified *before* it is
renamed into place, so a folder that does not match its plan is never left behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.events import Progress
from ..errors import QuantError
from .calibration import TokenSet
from .evaluate import Quality
from .output import check_output
from .plan import Plan
from .request import QuantRequest, default_output
from .scores import SensitivityTable
from .verify import VerifyReport


@dataclass
class QuantizeResult:
    plan: Plan
    out: Path | None = None
    verify: VerifyReport | None = None
    quality: list[Quality] | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    job_id: str = ""
    sensitivity_file: Path | None = None
    calibration: str = ""
    evaluation: str = ""
    capability: list[Any] | None = None     # core.evals.run.ModelEval: the float base, then this model

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job_id,
            "plan": self.plan.summary(), "out": None if self.out is None else str(self.out),
            "verify": None if self.verify is None else {
                "ok": self.verify.ok, "checked": self.verify.checked, "real_bpw": self.verify.real_bpw,
                "tensor_bytes": self.verify.tensor_bytes, "file_bytes": self.verify.file_bytes},
            "quality": None if self.quality is None else [q.to_dict() for q in self.quality],
            "seconds": self.seconds,
            "capability": None if self.capability is None else [m.to_dict() for m in self.capability],
        }


def merge_scores(inventory: SensitivityTable, scored: SensitivityTable) -> SensitivityTable:
    """Scores from a sensitivity table onto this model's inventory (paths must match)."""
    by_path = scored.by_path()
    missing = [t.path for t in inventory.tensors if t.path not in by_path]
    if missing:
        raise QuantError(f"the sensitivity scores lack {missing[0]} (and {len(missing) - 1} more): "
                         "they were made for another model")
    for t in inventory.tensors:
        other = by_path[t.path]
        if tuple(other.shape) != tuple(t.shape):
            raise QuantError(f"sensitivity shape {tuple(other.shape)} for {t.path} is not the model's {t.shape}")
        t.scores, t.methods = dict(other.scores), dict(other.methods)
    inventory.candidates = list(scored.candidates)
    inventory.model_hash, inventory.calibration_hash = scored.model_hash, scored.calibration_hash
    return inventory


class _Phases:
    """Progress, cancel checks and wall time per phase."""

    def __init__(self, ctx: Any) -> None:
        self.job = ctx.job_id if ctx is not None else 0
        self.emit = ctx.emit if ctx is not None else (lambda _e: None)
        self.check = ctx.check if ctx is not None else (lambda: None)
        self.seconds: dict[str, float] = {}
        self.clock = time.perf_counter()

    def __call__(self, name: str, done: int = 0, total: int | None = None, message: str = "",
                 work: dict[str, float] | None = None) -> None:
        self.check()
        self.emit(Progress(self.job, name, done, total, message, dict(work or {})))

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self.clock
        self.clock = now


def run_phases(ctx: Any, req: QuantRequest, record: Any) -> QuantizeResult:
    """The whole quantization, on the engine thread. Raises QuantError / ModelLoadError on bad input."""
    from ..engine.finite import check_files
    from ..engine.loader import open_tokenizer, resolve
    from ..partials import clean
    from ..paths import jobs_dir
    from .calibration import calibration_set, evaluation_set
    from .inventory import load_inventory
    from .recipes import recipe

    phase = _Phases(ctx)
    info = recipe(req.recipe)
    source = resolve(req.model)
    out = Path(req.output).expanduser() if req.output else default_output(req.model, req)
    if not req.plan_only:
        check_output(out, source, force=req.overwrite)
        clean(out.parent)                               # killed runs' leftovers

    phase("inventory", 0, 1, source.name)
    check_files(source, phase.check)                    # NaN/Inf weights: refused before any pass
    table = load_inventory(source, dtype=req.dtype)     # as it will be written (cast included)
    phase.lap("inventory")
    calib: TokenSet | None = None
    tokenizer = None
    scored_here = info.needs_scores and req.sensitivity is None
    if scored_here or ((req.awq or req.gptq or req.evaluate or req.polish_steps) and not req.plan_only):
        phase("sensitivity" if scored_here else "inventory", 0, None, "reading calibration text")
        tokenizer = open_tokenizer(source)
        calib = calibration_set(tokenizer, samples=req.samples, seq_len=req.seq_len,
                                source=None if req.calibration == "builtin" else req.calibration)
    sens_file = None
    if info.needs_scores:
        if req.sensitivity is not None:
            phase("sensitivity", 0, 1, f"reading {req.sensitivity}")
            table = merge_scores(table, SensitivityTable.load(Path(req.sensitivity).expanduser()))
        else:
            from .sensitivity import run_sensitivity

            mode = req.sensitivity_mode      # "auto": run_sensitivity applies core/quant/mode.py and says why
            scored = run_sensitivity(ctx, source, req.scored_candidates(), calib, mode=mode)
            meta = scored.meta
            how = "reused" if meta.get("reused") else "measured"
            phase("sensitivity", 1, 1, f"{how} {meta.get('mode', mode)} scores "
                  f"({meta.get('forward_passes', 0)} forward passes): {meta.get('file', '')}")
            table = merge_scores(table, scored)
            # the scores on the model's inventory: exactly the table the allocator sees, so the Layers
            # tab re-allocates to the same plan at the same budget
            sens_file = jobs_dir() / f"{record.id}.sensitivity.json"
            table.save(sens_file)
            record.result = {"sensitivity_file": str(sens_file)}
            record.save()
        phase.lap("sensitivity")

    phase("allocate", 0, 1, req.recipe)
    if scored_here:
        from ..accel.release import release_memory

        release_memory()                                # the Fisher pass's model and statistics, before the write
    plan = info.plan(table, req.plan_options(table.float_bytes))
    plan.model = str(source)
    phase.lap("allocate")
    phase("allocate", 1, 1, f"{plan.real_bpw:.3f} bpw")
    result = QuantizeResult(plan, seconds=phase.seconds, job_id=record.id, sensitivity_file=sens_file,
                            calibration=calib.describe() if calib is not None else "")
    if req.plan_only:
        return result

    replacing = check_output(out, source, force=req.overwrite)
    if replacing:
        phase("write", 0, None, replacing)
    reports: list[VerifyReport] = []

    def verify_before_commit(tmp: Path) -> None:
        from .verify import verify

        phase.lap("write")
        if req.polish_steps and chunks:
            from .polish import polish_folder

            polish_folder(tmp, source, chunks, req.polish_steps, progress=phase)
            phase.lap("polish")
        phase("verify", 0, len(plan.entries), out.name)
        reports.append(verify(tmp, plan, name=str(out)))
        phase("verify", len(plan.entries), len(plan.entries), "ok")

    from .gptq import Rounding
    from .write import write_quantized

    chunks = [list(map(int, row)) for row in calib.chunks] if calib is not None else None
    write_quantized(source, plan, out, force=req.overwrite, dtype=req.dtype,
                    awq_chunks=chunks if req.awq else None, calibration=chunks,
                    rounding=Rounding(gptq=req.gptq, clip=req.clip),
                    card={"base_model": source.name, "name": out.name},
                    progress=phase,
                    before_commit=verify_before_commit)
    result.out, result.verify = out, reports[0]
    result.verify.path = out
    phase.lap("verify")
    if req.evaluate and calib is not None:
        from ..accel.release import release_memory
        from .evaluate import evaluate, format_table

        release_memory()                                # what the write phase left behind: before two loads

        held = evaluation_set(tokenizer, samples=min(req.samples, 16), seq_len=req.seq_len,
                              source=None if req.evaluation == "builtin" else req.evaluation, calibration=calib)
        result.evaluation = held.describe()
        result.quality = evaluate(ctx, source, [out], [list(map(int, row)) for row in held.chunks])
        add_quality_to_card(out, format_table(result.quality), held.describe())
        phase.lap("evaluate")
    if req.eval_tasks:
        from ..evals.card import add_capability_to_card
        from ..evals.run import EvalSettings, evaluate_models
        from ..evals.tasks import parse_tasks

        settings = EvalSettings(tasks=tuple(parse_tasks(req.eval_tasks)), limit=req.eval_limit)
        result.capability = evaluate_models(ctx, source, [out], settings)
        add_capability_to_card(out, result.capability)
        phase.lap("capability")
    return result


def add_quality_to_card(out: Path, table: str, about: str) -> None:
    from .. import atomic

    card = out / "README.md"
    text = card.read_text()
    block = f"Against the unquantized model on held-out text ({about}):\n\n```\n{table}\n```\n"
    atomic.write_text(card, text.replace("Not measured.\n", block))
