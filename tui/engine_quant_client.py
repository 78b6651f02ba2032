"""The real `QuantClient`: core functions, engine jobs, job records, the app's library scan.

`EngineQuantClient` runs anything that touches MLX as an engine job (`engine.submit`), calling the same
core functions as `temper quantize`; pure-Python work (reading headers, re-running the allocator on saved
scores, job records, profiles) is called directly. The protocol and the types it returns live in
tui/quant_client.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from temper.core import jobs
from temper.core.engine import Engine, Job
from temper.core.errors import QuantError, TemperError
from temper.core.library.model_info import ModelInfo
from temper.core.library.service import LibraryService
from temper.core.profiles import Profile
from temper.core.quant.request import QuantRequest, QuantSettings, default_output, resolved_sensitivity_mode
from temper.core.quant.scores import SensitivityTable

from .quant_client import (
    RECIPES,
    Allocation,
    ModelChoice,
    Prediction,
    Preflight,
    Recipe,
    request_from_profile,
    save_to_profile,
)

if TYPE_CHECKING:
    from temper.core.quant.plan import Plan


class EngineQuantClient:
    """The real client: core functions, engine jobs, job records in jobs_dir(), the app's library scan."""

    def __init__(self, engine: Engine | None, library: LibraryService | None = None) -> None:
        self.engine = engine
        self.library = library if library is not None else LibraryService()

    def _submit(self, fn, kind: str) -> Job:
        if self.engine is None:
            raise TemperError("no engine to run this job on")
        return self.engine.submit(fn, kind=kind)

    # -- models -----------------------------------------------------------------------------------------
    def models(self, active: str | None = None) -> list[ModelChoice]:
        """The active model first (even a quantized one), then every float model of the library. May scan
        (seconds on a large library): call it from a worker, never the UI thread."""
        found: dict[str, ModelChoice] = {}
        if active:
            try:
                choice = self.model(str(active))
                found[choice.path] = choice
            except TemperError:
                pass
        for info in self.library.models():
            if info.error is None and info.quantization in ("none", "") and str(info.path) not in found:
                found[str(info.path)] = _from_info(info)
        return list(found.values())

    def model(self, path: str) -> ModelChoice:
        return _from_info(_inspect(Path(path).expanduser()))

    def preflight(self, model: ModelChoice, request: QuantRequest) -> Preflight:
        from temper.core.accel.compute import on_cpu_backend
        from temper.core.quant.memory_rule import pass_memory
        from temper.core.quant.time_rule import likely_seconds

        memory = pass_memory(Path(model.path))      # the core's own rule: it streams exactly when this says so
        free, needed, streamed = memory.free_bytes, memory.needed_bytes, memory.streamed
        # the core's time rule (time_rule.py): None on a GPU, where it has no measured figure
        tokens = request.samples * request.seq_len
        exact = resolved_sensitivity_mode(request.sensitivity_mode) != "fast"
        held_out = min(request.samples, 16) * request.seq_len if request.evaluate else 0
        eta = likely_seconds(model.params, tokens, held_out, exact_candidates=len(request.candidates()) if exact else 0,
                             on_cpu=on_cpu_backend())
        return Preflight(free, needed, streamed, eta)

    def float_copy_of(self, model: ModelChoice) -> str | None:
        """The float copy of a quantized model, if one was made (beside it)."""
        from temper.core.library.float_copy import existing_copy

        found = existing_copy(Path(model.path))
        return str(found) if found is not None else None

    def make_float_copy(self, model: ModelChoice) -> Job[str]:
        """An engine job writing the bf16 copy beside the model; its result is the copy's path."""
        from temper.core.engine.events import Progress
        from temper.core.library.float_copy import float_copy

        def job(ctx) -> str:
            def say(message: str, fraction: float) -> None:
                ctx.emit(Progress(ctx.job_id, "float-copy", int(fraction * 100), 100, message))

            return str(float_copy(Path(model.path), progress=say, check=ctx.check))

        return self._submit(job, kind="float-copy")

    # -- planning ---------------------------------------------------------------------------------------
    def recipes(self) -> list[Recipe]:
        return list(RECIPES)

    def default_output(self, request: QuantRequest) -> str:
        return str(default_output(request.model, request))

    def saved_table(self, model_path: str) -> SensitivityTable | None:
        """The newest sensitivity table a quantize job saved for this model, or None."""
        for record in jobs.all_jobs("quantize"):
            if record.request.get("model") != model_path or not record.result:
                continue
            path = record.result.get("sensitivity_file")
            if path and Path(path).is_file():
                try:
                    return SensitivityTable.load(Path(path))
                except TemperError:
                    continue
        return _measured_table(model_path)

    def predict(self, model: ModelChoice, request: QuantRequest) -> Prediction:
        table = self.saved_table(model.path)
        if table is not None and request.recipe == "temper":
            alloc = self.allocate(table, request.target_bpw or 4.5, {}, request=request)
            return Prediction(alloc.bpw, alloc.size_bytes, alloc.kl, "from saved sensitivity scores")
        bpw = _recipe_bpw(request, model)
        size = int(bpw * model.params / 8)
        return Prediction(bpw, size, None, "KL is predicted after the sensitivity pass")

    def allocate(self, table: SensitivityTable, target_bpw: float, pins: dict[str, str],
                 request: QuantRequest | None = None) -> Allocation:
        from temper.core.quant.allocate import Protect
        from temper.core.quant.recipes import RecipeRequest, build_plan

        protect = [Protect.parse(p) for p in (request.protect if request else [])]
        plan = build_plan("temper", table, RecipeRequest(bpw=target_bpw, pins=dict(pins), protect=protect))
        return _allocation_from_plan(plan, pins)

    def frontier(self, table: SensitivityTable, pins: dict[str, str], points: int = 12) -> list[tuple[float, float]]:
        """Predicted KL at evenly spaced budgets between the cheapest and the widest plan."""
        costs = [c.bits_per_weight(table.float_bytes) for c in table.candidate_objects()]
        lo, hi = min(costs) + 0.05, max(costs)
        out = []
        for i in range(points):
            bpw = lo + (hi - lo) * i / (points - 1)
            try:
                alloc = self.allocate(table, bpw, pins)
            except QuantError:
                continue
            out.append((alloc.bpw, alloc.kl))
        return out

    # -- jobs -------------------------------------------------------------------------------------------
    def start(self, request: QuantRequest) -> Job[dict]:
        request.validate()
        from temper.core.quant.pipeline import quantize, result_dict

        return self._submit(lambda ctx: result_dict(quantize(ctx, request)), kind="quantize")

    def measure(self, model_path: str, settings: QuantSettings) -> Job[SensitivityTable]:
        """An engine job running the sensitivity pass alone (the Layers tab's "measure now"): per-tensor events
        as it goes, the table as its result, saved where a later quantize of the same settings reuses it."""
        from temper.core.quant.sensitivity import run_sensitivity

        settings.check()
        calibration = None if settings.calibration == "builtin" else settings.calibration
        mode = resolved_sensitivity_mode(settings.sensitivity_mode)
        return self._submit(lambda ctx: run_sensitivity(
            ctx, model_path, settings.candidates(), calibration, mode=mode, samples=settings.samples,
            seq_len=settings.seq_len), kind="sensitivity")

    def interrupted(self) -> list[jobs.JobRecord]:
        return jobs.interrupted("quantize")

    def resume(self, record: jobs.JobRecord) -> Job[dict]:
        from temper.core.quant.pipeline import result_dict, resume

        return self._submit(lambda ctx: result_dict(resume(ctx, record.id)), kind="quantize")

    def discard(self, record: jobs.JobRecord) -> None:
        jobs.discard(record)

    def run_evals(self, base: str, quant: str, tasks: list[str], limit: int | None):
        """Capability evals of `quant` beside its float `base` (cached per model and settings), as an engine
        job; its result is the wizard's capability dict, also written to the model card and to the
        quantize job record of `quant` (so Compare shows it later)."""
        from temper.core.evals.run import EvalSettings
        from temper.core.evals.tasks import parse_tasks

        settings = EvalSettings(tasks=tuple(parse_tasks(",".join(tasks))), limit=limit)
        if limit is not None and limit < 1:
            raise QuantError("eval limit must be ≥ 1")

        def job(ctx) -> dict:
            from temper.core.evals.card import add_capability_to_card
            from temper.core.evals.run import evaluate_models
            from temper.core.quant.pipeline import capability_dict

            models = evaluate_models(ctx, Path(base), [Path(quant)], settings)
            add_capability_to_card(Path(quant), models)
            found = capability_dict(models) or {}
            for record in self.past_results(base):
                if record.result.get("output") == quant:
                    record.result["capability"] = found
                    record.save()
            return found

        return self._submit(job, "eval")

    def past_results(self, model_path: str) -> list[jobs.JobRecord]:
        return [r for r in jobs.all_jobs("quantize")
                if r.status == "done" and r.result and r.result.get("output") and r.request.get("model") == model_path]

    # -- profiles ---------------------------------------------------------------------------------------
    def request_from_profile(self, profile: Profile | None) -> QuantRequest:
        return request_from_profile(profile)

    def save_profile(self, name: str, request: QuantRequest, base: Profile | None = None) -> tuple[Profile, Path]:
        return save_to_profile(name, request, base)

def _measured_table(model_path: str) -> SensitivityTable | None:
    """The newest complete table a sensitivity pass alone saved for this model (Layers' "measure now",
    `temper sensitivity`), from temper's sensitivity folder."""
    from temper.core.paths import data_dir

    folder = data_dir() / "sensitivity"
    files = sorted(folder.glob("*.json"), key=lambda f: f.stat().st_mtime, reverse=True) if folder.is_dir() else []
    want = Path(model_path).expanduser().resolve()
    for file in files:
        try:
            table = SensitivityTable.load(file)
        except TemperError:
            continue
        if Path(table.model).expanduser().resolve() == want and table.meta.get("complete", True) is not False:
            return table
    return None


def _recipe_bpw(request: QuantRequest, model: ModelChoice) -> float:
    from temper.core.quant.candidates import Candidate
    from temper.core.quant.recipes import TEMPER_DEFAULT_BPW, recipe

    if request.size_gb is not None and model.params:
        return request.size_gb * 1e9 * 8 / model.params
    if request.target_bpw is not None:
        return request.target_bpw
    if request.recipe.startswith("uniform-"):
        return Candidate(int(request.recipe.split("-")[1]), 64).bits_per_weight(model.float_bytes)
    if request.recipe.startswith("unsloth-"):
        base = int(request.recipe.split("-")[1])
        return Candidate(min(base + 1, 8), 64).bits_per_weight(model.float_bytes)  # rough: the map averages ~b+1
    return recipe(request.recipe).default_bpw or TEMPER_DEFAULT_BPW


def _allocation_from_plan(plan: Plan, pins: dict[str, str]) -> Allocation:
    choice = {entry.path: entry.key for entry in plan.entries}
    return Allocation(choice, float(plan.real_bpw), int(plan.size_bytes), float(plan.predicted_dkl or 0.0),
                      dict(pins))


def _inspect(path: Path) -> ModelInfo:
    from temper.core.library.inspect import inspect_model

    return inspect_model(path)


def _from_info(info: ModelInfo) -> ModelChoice:
    if info.error:
        raise TemperError(info.error)
    dtype = str((info.details or {}).get("dtype", "BF16")).upper()
    float_bytes = 4 if dtype in ("F32", "FLOAT32") else 2
    return ModelChoice(info.name, str(info.path), info.architecture, info.parameters, info.size_bytes,
                       float_bytes, info.quantization)
