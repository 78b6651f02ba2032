"""Quantization as an engine job: scores -> allocate -> write -> verify (-> evaluate), with progress events.

`temper quantize` and the TUI wizard both call `quantize_job(ctx, request)` on the engine thread; each
phase emits `Progress(job, phase, done, total, message)` with phase in: inventory, sensitivity,
allocate, write, verify, evaluate. The written folder is verified *before* it is renamed into place,
so a folder that does not match its plan is never left behind.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.events import Progress
from ..errors import QuantError
from .allocate import Protect, parse_pins
from .candidates import AFFINE_BITS, Candidate, grid
from .evaluate import Quality
from .output import check_output
from .plan import Plan
from .recipes import RecipeRequest, build_plan, describe
from .scores import SensitivityTable
from .verify import VerifyReport
from .write import DTYPES, write_quantized


@dataclass
class QuantizeRequest:
    model: str | Path
    recipe: str | None = None
    bpw: float | None = None
    size_gb: float | None = None
    bits: Sequence[int] | None = None
    group_sizes: Sequence[int] | None = None
    modes: Sequence[str] | None = None
    protect: Sequence[str] = ()
    pins: Sequence[str] = ()
    min_bits: int | None = None
    max_bits: int | None = None
    sensitivity: Path | None = None         # a saved SensitivityTable JSON
    sensitivity_mode: str = "hybrid"        # fast | hybrid | exact, when scores must be measured
    calibration: Any = None                 # passed to run_sensitivity when scores must be computed
    out: Path | None = None
    plan_only: bool = False
    force: bool = False
    dtype: str | None = None                # cast before quantizing (default: the source's dtype)
    eval_chunks: list[list[int]] | None = None
    eval_about: str = ""                    # what the evaluation text is (recorded in the model card)
    awq: bool = False                       # AWQ-style pre-scaling on calibration text
    gptq: bool = True                       # error-compensated rounding on calibration activations
    clip: bool = True                       # per-group scale/bias shrink search (output-error weighted)


@dataclass
class QuantizeResult:
    plan: Plan
    out: Path | None = None
    verify: VerifyReport | None = None
    quality: list[Quality] | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.summary(), "out": None if self.out is None else str(self.out),
            "verify": None if self.verify is None else {
                "ok": self.verify.ok, "checked": self.verify.checked, "real_bpw": self.verify.real_bpw,
                "tensor_bytes": self.verify.tensor_bytes, "file_bytes": self.verify.file_bytes},
            "quality": None if self.quality is None else [q.to_dict() for q in self.quality],
            "seconds": self.seconds,
        }


def candidates_of(req: QuantizeRequest) -> list[Candidate] | None:
    if req.bits is None and req.group_sizes is None and req.modes is None:
        return None
    return grid(req.bits or AFFINE_BITS, req.group_sizes or (64,), req.modes or ("affine",))


def default_out(model: Path, method: str) -> Path:
    from ..paths import models_dir

    return models_dir() / f"{model.name}-{method}"


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


def compute_scores(ctx: Any, model: Path, candidates: Sequence[Candidate], calibration: Any,
                   mode: str = "hybrid") -> SensitivityTable:
    """The sensitivity pass (core/quant/sensitivity): measured, resumed, or reused from the saved table
    (a table of this model, calibration and mode, or of a more exact mode, answers with no forward pass)."""
    from .sensitivity import run_sensitivity

    return run_sensitivity(ctx, model, list(candidates), calibration, mode=mode)


def quantize_job(ctx: Any, req: QuantizeRequest) -> QuantizeResult:
    """The whole quantization, on the engine thread. Raises QuantError / ModelLoadError on bad input."""
    from ..engine.loader import resolve, validate
    from .inventory import load_inventory

    job = ctx.job_id if ctx is not None else 0
    emit = ctx.emit if ctx is not None else (lambda _e: None)
    check = ctx.check if ctx is not None else (lambda: None)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def phase(name: str, done: int = 0, total: int | None = None, message: str = "") -> None:
        check()
        emit(Progress(job, name, done, total, message))

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = seconds.get(name, 0.0) + now - clock
        clock = now

    recipe = req.recipe or ("temper" if req.bpw is not None or req.size_gb is not None else None)
    if recipe is None:
        raise QuantError("say what to make: --recipe NAME, --bpw X or --size-gb G")
    info = describe(recipe)
    if req.dtype is not None and req.dtype not in DTYPES:
        raise QuantError(f"dtype must be one of {', '.join(DTYPES)}, not {req.dtype}")
    source = resolve(req.model)
    validate(source)
    if req.out is not None and not req.plan_only:
        check_output(Path(req.out), source, force=req.force)

    phase("inventory", 0, 1, source.name)
    table = load_inventory(source, dtype=req.dtype)     # as it will be written (cast included)
    float_bytes = table.float_bytes
    lap("inventory")
    cands = candidates_of(req)
    if info.needs_scores:
        if req.sensitivity is not None:
            phase("sensitivity", 0, 1, f"reading {req.sensitivity}")
            table = merge_scores(table, SensitivityTable.load(Path(req.sensitivity)))
        else:
            phase("sensitivity", 0, None, f"{req.sensitivity_mode} pass")
            wanted = cands or grid(AFFINE_BITS, (32, 64, 128))
            scored = compute_scores(ctx, source, wanted, req.calibration, req.sensitivity_mode)
            meta = scored.meta
            how = "reused" if meta.get("reused") else "measured"
            phase("sensitivity", 1, 1, f"{how} {meta.get('mode', req.sensitivity_mode)} scores "
                  f"({meta.get('forward_passes', 0)} forward passes): {meta.get('file', '')}")
            table = merge_scores(table, scored)
        lap("sensitivity")

    phase("allocate", 0, 1, recipe)
    request = RecipeRequest(bpw=req.bpw, size_gb=req.size_gb, candidates=cands,
                            protect=[Protect.parse(p) for p in req.protect], pins=parse_pins(req.pins),
                            min_bits=req.min_bits, max_bits=req.max_bits, float_bytes=float_bytes)
    plan = build_plan(recipe, table, request)
    plan.model = str(source)
    lap("allocate")
    phase("allocate", 1, 1, f"{plan.real_bpw:.3f} bpw")
    if req.plan_only:
        return QuantizeResult(plan, seconds=seconds)

    out = Path(req.out) if req.out is not None else default_out(source, recipe)
    replacing = check_output(out, source, force=req.force)
    if replacing:
        phase("write", 0, None, replacing)
    reports: list[VerifyReport] = []

    def verify_before_commit(tmp: Path) -> None:
        from .verify import verify

        lap("write")
        phase("verify", 0, len(plan.entries), out.name)
        reports.append(verify(tmp, plan))
        phase("verify", len(plan.entries), len(plan.entries), "ok")

    from .gptq import Rounding

    chunks = calibration_chunks(source, req.calibration) if (req.awq or req.gptq) else None
    write_quantized(source, plan, out, force=req.force, dtype=req.dtype, awq_chunks=chunks if req.awq else None,
                    rounding=Rounding(gptq=req.gptq, clip=req.clip), calibration=chunks,
                    card={"base_model": source.name, "name": out.name},
                    progress=lambda name, done, total, message="": phase(name, done, total, message),
                    before_commit=verify_before_commit)
    report = reports[0]
    report.path = out
    lap("verify")
    quality = None
    if req.eval_chunks:
        from .evaluate import evaluate, format_table

        quality = evaluate(ctx, source, [out], req.eval_chunks)
        add_quality_to_card(out, format_table(quality), req.eval_about or f"{len(req.eval_chunks)} chunks")
        lap("evaluate")
    return QuantizeResult(plan, out, report, quality, seconds)


def calibration_chunks(source: Path, calibration: Any) -> list[list[int]]:
    """Token chunks for AWQ: the request's own (a list of chunks or a TokenSet), else temper's calibration set."""
    if calibration is None:
        try:
            from mlx_lm.utils import load_tokenizer

            from .calibration import calibration_set  # type: ignore[import-not-found,attr-defined]
        except ImportError as exc:
            raise QuantError("AWQ needs calibration text and this build has no calibration set: "
                             "pass calibration chunks") from exc
        calibration = calibration_set(load_tokenizer(Path(source)))
    rows = getattr(calibration, "chunks", calibration)
    return [list(map(int, r)) for r in rows]


def add_quality_to_card(out: Path, table: str, about: str) -> None:
    from .. import atomic

    card = out / "README.md"
    text = card.read_text()
    block = f"Against the unquantized model on held-out text ({about}):\n\n```\n{table}\n```\n"
    atomic.write_text(card, text.replace("Not measured.\n", block))
