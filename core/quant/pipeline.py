"""Quantization as a persistent, resumable job: the one entry `temper quantize` and the Quantize tab call.

`quantize(ctx, request)` keeps a job record in jobs_dir() up to date (phase, progress, outcome) while
job.run_phases runs calibration → scores → plan → write → verify → evaluate (the sensitivity pass
checkpoints after every tensor, so a killed run resumes where it stopped). Progress events gain an `eta_s`
in their data (the one rule the CLI and the app display: core/engine/eta.py). `resume(ctx, job_id)` picks
an unfinished record up again with the request it was started with.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .. import jobs
from ..engine.eta import EtaContext
from ..engine.events import Progress
from ..errors import JobCancelled, QuantError
from .job import QuantizeResult
from .output import check_output
from .request import QuantRequest
from .source import require_float


class RecordingContext(EtaContext):
    """The job context seen by the core: passes everything through, and on the way keeps the job
    record current and adds an ETA to progress (core/engine/eta.py: per phase, in the work units the
    event carries, the first step left out of the rate)."""

    def __init__(self, ctx: Any, record: jobs.JobRecord, *, save_every: float = 1.0) -> None:
        super().__init__(ctx)
        self.record = record
        self._save_every = save_every
        self._last_save = 0.0

    def noted(self, event: Progress) -> None:
        changed = event.phase != self.record.phase
        self.record.phase = event.phase
        self.record.progress[event.phase] = [event.done, event.total]
        now = time.monotonic()
        if changed or now - self._last_save >= self._save_every:
            self._last_save = now
            self.record.save()


def quantize(ctx: Any, request: QuantRequest, record: jobs.JobRecord | None = None) -> QuantizeResult:
    """The one entry into quantization (CLI and app alike): validates the request, then runs it under a
    job record that keeps phase, progress and outcome (a killed run can be resumed from it)."""
    from ..engine.loader import open_model, resolve
    from .job import run_phases

    request.validate()
    source = resolve(request.model)
    # before a record exists (nothing to resume, nothing shown as run): the folder and every tensor's
    # shape (no weights read), and a float source
    open_model(source, lazy=True, finite=False)
    require_float(source)
    if request.output and not request.plan_only:
        check_output(Path(request.output).expanduser(), source, force=request.overwrite)
    record = record or jobs.create("quantize", request.to_dict())
    rctx = RecordingContext(ctx, record)
    try:
        result = run_phases(rctx, request, record)
    except JobCancelled as exc:
        if exc.resumable:     # the app closed mid-run: the record stays open, offered for resume next start
            record.save()
        else:
            record.finish("cancelled", error="cancelled")
        raise
    except BaseException as exc:
        record.finish("failed", error=" ".join(str(exc).split()) or type(exc).__name__)
        raise
    record.finish("done", result=result_dict(result))
    return result


def resume(ctx: Any, job_id: str) -> QuantizeResult:
    """Run an unfinished job again with the request it was started with (saved scores are reused)."""
    record = jobs.load(job_id)
    if record.kind != "quantize":
        raise QuantError(f"job {job_id} is a {record.kind} job, not a quantization")
    if record.status == "done":
        raise QuantError(f"job {job_id} already finished")
    record.attempts += 1
    record.claim()
    return quantize(ctx, QuantRequest.parse(record.request), record)


def capability_dict(models: list[Any] | None) -> dict[str, Any] | None:
    """Per task: this model's accuracy, interval and n beside the float base's; the capability scores."""
    if not models:
        return None
    base = next((m for m in models if m.role == "float"), None)
    ours = models[-1]
    tasks = {}
    for t, r in ours.results.items():
        low, high = r.interval
        b = base.results.get(t) if base is not None else None
        tasks[t] = {"accuracy": r.accuracy, "low": low, "high": high, "n": r.n,
                    "base_accuracy": None if b is None else b.accuracy}
    return {"tasks": tasks, "capability": ours.capability,
            "base_capability": None if base is None else base.capability}


def result_dict(res: QuantizeResult) -> dict[str, Any]:
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
        "capability": capability_dict(res.capability),
        "calibration": res.calibration,
        "evaluation": res.evaluation,
        "sensitivity_file": str(res.sensitivity_file) if res.sensitivity_file else None,
        "plan": {e.path: e.key for e in plan.entries},
        "seconds": dict(res.seconds),
    }
