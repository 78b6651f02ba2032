"""Quantization as a persistent, resumable job: what the Quantize tab (and a resumed job) runs.

`run_pipeline(ctx, request)` keeps a job record in jobs_dir() up to date (phase, progress, outcome), runs
the sensitivity pass (which checkpoints after every tensor, so a killed run resumes where it stopped),
then hands the saved scores to `quantize_job` (allocate → write → verify → evaluate) — the same function
`temper quantize` calls. Progress events gain an `eta_s` in their data. `resume_pipeline(ctx, job_id)`
picks an interrupted record up again with the request it was started with.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from .. import jobs
from ..engine.events import Event, Progress
from ..errors import JobCancelled, QuantError
from ..paths import jobs_dir
from .candidates import AFFINE_BITS, Candidate, grid
from .output import check_output
from .request import QuantRequest, resolved_sensitivity_mode


class RecordingContext:
    """The job context seen by the core: passes everything through, and on the way keeps the job
    record current and adds an ETA to progress (per phase, from the rate so far)."""

    def __init__(self, ctx: Any, record: jobs.JobRecord, *, save_every: float = 1.0) -> None:
        self._ctx = ctx
        self.record = record
        self._save_every = save_every
        self._last_save = 0.0
        self._phase_start: dict[str, tuple[float, int]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    @property
    def job_id(self) -> int:
        return self._ctx.job_id

    def check(self) -> None:
        self._ctx.check()

    def eta(self, phase: str, done: int, total: int | None) -> float | None:
        now = time.monotonic()
        start = self._phase_start.get(phase)
        if start is None or done < start[1]:
            self._phase_start[phase] = (now, done)
            return None
        t0, d0 = start
        if not total or done <= d0:
            return None
        return (now - t0) / (done - d0) * (total - done)

    def emit(self, event: Event) -> None:
        if not isinstance(event, Progress) and hasattr(event, "path") and hasattr(event, "scores"):
            self._ctx.emit(event)            # a tensor scored: the live Layers view wants it as it is
            done, total = int(getattr(event, "done", 0)), int(getattr(event, "total", 0)) or None
            method = getattr(event, "method", "")
            event = Progress(self.job_id, "sensitivity", done, total, f"{method} {event.path}".strip())
        if isinstance(event, Progress):
            eta = self.eta(f"{event.phase}:{event.total}", event.done, event.total)
            if eta is not None and "eta_s" not in event.data:
                event = dataclasses.replace(event, data={**event.data, "eta_s": eta})
            self._note(event)
        self._ctx.emit(event)

    def _note(self, event: Progress) -> None:
        changed = event.phase != self.record.phase
        self.record.phase = event.phase
        self.record.progress[event.phase] = [event.done, event.total]
        now = time.monotonic()
        if changed or now - self._last_save >= self._save_every:
            self._last_save = now
            self.record.save()


def sensitivity_candidates(request: QuantRequest) -> list[Candidate]:
    """The candidates the recipe will choose from: the scores must cover them."""
    if request.recipe.startswith("oq"):
        return grid(AFFINE_BITS, (64,))
    if request.recipe == "optiq-like":
        return grid((4, 8), (64,))
    return request.candidates()


def run_pipeline(ctx: Any, request: QuantRequest, record: jobs.JobRecord | None = None) -> dict[str, Any]:
    """The whole quantization as a recorded job. Returns a plain result dict (also kept in the record)."""
    request.validate()
    out = Path(request.output).expanduser() if request.output else None
    if out is not None:
        from ..engine.loader import resolve

        check_output(out, resolve(request.model), force=request.overwrite)
    record = record or jobs.create("quantize", request.to_dict())
    rctx = RecordingContext(ctx, record)
    try:
        result = _run(rctx, request, record)
    except JobCancelled:
        record.finish("cancelled", error="cancelled")
        raise
    except BaseException as exc:
        record.finish("failed", error=" ".join(str(exc).split()) or type(exc).__name__)
        raise
    record.finish("done", result=result)
    return result


def resume_pipeline(ctx: Any, job_id: str) -> dict[str, Any]:
    record = jobs.load(job_id)
    if record.status == "done":
        raise QuantError(f"job {job_id} already finished")
    record.attempts += 1
    record.claim()
    request = QuantRequest.from_dict(record.request)
    return run_pipeline(ctx, request, record)


def _run(ctx: RecordingContext, req: QuantRequest, record: jobs.JobRecord) -> dict[str, Any]:
    from mlx_lm.utils import load_tokenizer

    from ..engine.loader import resolve
    from .calibration import calibration_set, evaluation_set
    from .job import QuantizeRequest, quantize_job
    from .recipes import describe

    info = describe(req.recipe)
    if req.awq and "awq" not in {f.name for f in dataclasses.fields(QuantizeRequest)}:
        raise QuantError("AWQ pre-scaling is not available in this build: turn it off")
    source = resolve(req.model)
    ctx.emit(Progress(ctx.job_id, "sensitivity", 0, None, "reading calibration and evaluation text"))
    tokenizer = load_tokenizer(source)
    calib_source = None if req.calibration == "builtin" else req.calibration
    calib = calibration_set(tokenizer, samples=req.samples, seq_len=req.seq_len, source=calib_source)
    evaluation = evaluation_set(tokenizer, samples=min(req.samples, 16), seq_len=req.seq_len,
                                source=None if req.evaluation == "builtin" else req.evaluation, calibration=calib)
    sens_file = None
    if info.needs_scores:
        from .inventory import load_inventory
        from .job import merge_scores
        from .sensitivity import run_sensitivity

        scored = run_sensitivity(ctx, source, sensitivity_candidates(req), calib,
                                 mode=resolved_sensitivity_mode(req.sensitivity_mode))
        # the scores on the model's inventory (fixed bytes, required rules): exactly the table the
        # allocator sees, so the Layers tab re-allocates to the same plan at the same budget
        table = merge_scores(load_inventory(source), scored)
        sens_file = jobs_dir() / f"{record.id}.sensitivity.json"
        table.save(sens_file)
        record.result = {"sensitivity_file": str(sens_file)}
        record.save()
    temper = req.recipe == "temper"
    core = QuantizeRequest(
        model=source, recipe=req.recipe,
        bpw=req.target_bpw if temper and req.size_gb is None else None,
        size_gb=req.size_gb if temper else None,
        bits=req.bits if temper else None, group_sizes=req.group_sizes if temper else None,
        modes=req.modes if temper else None, protect=list(req.protect), sensitivity=sens_file,
        out=Path(req.output).expanduser() if req.output else None, force=req.overwrite,
        eval_chunks=[list(map(int, row)) for row in evaluation.chunks], gptq=req.gptq, clip=req.clip,
    )
    res = quantize_job(ctx, core)
    return result_dict(res, sens_file, calib.describe(), evaluation.describe())


def result_dict(res: Any, sens_file: Path | None, calibration: str, evaluation: str) -> dict[str, Any]:
    """What the wizard's Result step and `temper` job records show, as plain JSON."""
    plan = res.plan
    verify = res.verify
    rows = list(res.quality or [])
    # evaluate() gives the base row first, then one row per quantized folder: ours is the last one
    quality = next((r for r in rows if res.out and r.path == str(res.out)), rows[-1] if len(rows) > 1 else None)
    q = None
    if quality is not None:
        d = quality.to_dict()
        q = {k: d.get(k) for k in ("kl_mean", "kl_se", "kl_median", "kl_p95", "kl_p99", "kl_max", "top1")}
        q.update(ppl_quant=d.get("ppl"), ppl_base=d.get("base_ppl"), tokens=d.get("tokens"))
    return {
        "output": str(res.out) if res.out else None,
        "model": plan.model,
        "method": plan.method,
        "bpw": verify.real_bpw if verify is not None else plan.real_bpw,
        "planned_bpw": plan.real_bpw,
        "size_bytes": verify.file_bytes if verify is not None else plan.size_bytes,
        "float_size_bytes": plan.float_size_bytes,
        "predicted_kl": plan.predicted_dkl,
        "verified": bool(verify is not None and verify.ok),
        "widths": plan.summary().get("widths", {}),
        "quality": q,
        "calibration": calibration,
        "evaluation": evaluation,
        "sensitivity_file": str(sens_file) if sens_file else None,
        "plan": {e.path: e.key for e in plan.entries},
        "seconds": dict(res.seconds),
    }
