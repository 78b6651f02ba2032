"""A fake quantization client for UI tests: fixed models, fixed scores, a job that emits scripted events.

Its jobs run on the real engine (so events travel engine → bridge → app → views exactly as in use), but
do no MLX work. The fake allocator is a plain greedy (test-only); the real one lives in core/quant.
"""

from __future__ import annotations

import threading
from pathlib import Path

from temper.core import jobs
from temper.core.engine.events import Progress
from temper.core.errors import QuantError
from temper.core.quant.candidates import Candidate
from temper.core.quant.request import QuantRequest
from temper.core.quant.scores import SensitivityTable, TensorScores
from temper.core.quant.sensitivity import LayerScored
from temper.tui.app import TemperApp
from temper.tui.quant_client import (
    RECIPES,
    Allocation,
    ModelChoice,
    Prediction,
    Preflight,
    request_from_profile,
    save_to_profile,
)

KINDS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
CANDS = [Candidate(b, 64) for b in (2, 3, 4, 6, 8)]


def fake_table(layers: int = 4) -> SensitivityTable:
    tensors = []
    for layer in range(layers):
        for k, kind in enumerate(KINDS):
            shape = (256, 64) if kind in ("gate_proj", "up_proj") else (64, 256) if kind == "down_proj" else (64, 64)
            base = 0.02 * (1 + k % 3) * (1 + (layer == 0) * 3 + (layer == layers - 1) * 2)
            scores = {c.key: round(base * 2.0 ** (4 - c.bits) * (1.3 if kind == "down_proj" else 1.0), 6)
                      for c in CANDS}
            tensors.append(TensorScores(f"model.layers.{layer}.{'self_attn' if 'proj' in kind and kind[0] in 'qkvo' else 'mlp'}.{kind}",
                                        shape, shape[0] * shape[1], kind, layer, scores,
                                        {c.key: "exact" for c in CANDS}))
    tensors.append(TensorScores("model.embed_tokens", (512, 64), 512 * 64, "embed_tokens", None,
                                {c.key: 0.01 * 2.0 ** (4 - c.bits) for c in CANDS}))
    return SensitivityTable("fake/tiny", "h", "c", [c.key for c in CANDS], 2, 16 * 64 * 9, 64 * 9, tensors)


def greedy(table: SensitivityTable, target: float, pins: dict[str, str]) -> Allocation:
    """Test-only allocator: take single-step upgrades in order of ΔKL saved per bit while they fit."""
    cands = sorted(table.candidate_objects(), key=lambda c: c.bits_per_weight(table.float_bytes))
    keys = [c.key for c in cands]
    cost = {c.key: c.bits_per_weight(table.float_bytes) for c in cands}
    total = sum(t.params for t in table.tensors) + table.fixed_params
    choice = {t.path: pins.get(t.path, keys[0]) for t in table.tensors}
    used = table.fixed_bits + sum(cost[choice[t.path]] * t.params for t in table.tensors)
    budget = target * total
    if used > budget + 1e-6:
        raise QuantError(f"a budget of {target:.2f} bpw is below the cheapest plan ({used / total:.2f} bpw)")
    steps = []
    for t in table.tensors:
        if t.path in pins:
            continue
        for i in range(len(keys) - 1):
            extra = (cost[keys[i + 1]] - cost[keys[i]]) * t.params
            gain = t.scores[keys[i]] - t.scores[keys[i + 1]]
            steps.append((-gain / extra, i, t.path, extra))
    for _, i, path, extra in sorted(steps):
        if choice[path] == keys[i] and used + extra <= budget + 1e-6:
            choice[path] = keys[i + 1]
            used += extra
    by_path = table.by_path()
    kl = sum(by_path[p].scores[k] for p, k in choice.items())
    return Allocation(choice, round(used / total, 4), int(used / 8), kl, dict(pins))


RESULT = {
    "output": "", "bpw": 4.48, "size_bytes": 123_456, "predicted_kl": 0.0812, "verified": True,
    "evaluation": "built-in held-out text",
    "quality": {"kl_mean": 0.0791, "kl_se": 0.0042, "kl_median": 0.061, "kl_p95": 0.21, "kl_p99": 0.33,
                "kl_max": 0.52, "top1": 0.912, "ppl_base": 21.37, "ppl_quant": 22.05},
}


class FakeQuantClient:
    def __init__(self, app: TemperApp, model_dir: Path, *, gate: threading.Event | None = None,
                 fail_in: str | None = None, quantized: bool = False) -> None:
        self.app = app
        self.model_dir = Path(model_dir)
        self.fail_in = fail_in          # a phase to fail in (the next run only)
        self.quantized = quantized      # list a 4-bit model first (its float copy is made by make_float_copy)
        self.copies: list[str] = []
        self.table = fake_table()
        self.gate = gate               # when set, the fake job waits on it in the middle of sensitivity
        self.started: list[QuantRequest] = []
        self.saved_scores = False
        self.evals: list[tuple[str, str, list[str], int | None]] = []

    def models(self, active: str | None = None) -> list[ModelChoice]:
        four_bit = [ModelChoice("tiny-4bit", str(self.model_dir.parent / "tiny-4bit"), "llama", 1_234_567,
                                700_000, 2, "4-bit")] if self.quantized else []
        copies = [ModelChoice(Path(p).name, p, "llama", 1_234_567, 2_469_134, 2) for p in self.copies]
        return [*four_bit, *copies,
                ModelChoice("tiny-llama", str(self.model_dir), "llama", 1_234_567, 2_469_134, 2),
                ModelChoice("tiny-gemma", str(self.model_dir.parent / "tiny-gemma"), "gemma4_text", 2_000_000,
                            4_000_000, 2)]

    def model(self, path: str) -> ModelChoice:
        for m in self.models():
            if m.path == path:
                return m
        raise QuantError(f"{path} is not a model folder (no config.json)")

    def float_copy_of(self, model: ModelChoice) -> str | None:
        path = f"{model.path}-bf16"
        return path if path in self.copies else None

    def make_float_copy(self, model: ModelChoice):
        def job(ctx) -> str:
            ctx.emit(Progress(ctx.job_id, "float-copy", 50, 100, "dequantizing"))
            self.copies.append(f"{model.path}-bf16")
            return f"{model.path}-bf16"

        return self.app.engine.submit(job, kind="float-copy")

    def preflight(self, model: ModelChoice, request: QuantRequest) -> Preflight:
        return Preflight(16_000_000_000, model.size_bytes * 2, False, 95.0)

    def recipes(self):
        return list(RECIPES)

    def default_output(self, request: QuantRequest) -> str:
        return str(self.model_dir.parent / f"out-{request.budget_label().replace(' ', '')}")

    def saved_table(self, model_path: str):
        return self.table if self.saved_scores else None

    def predict(self, model: ModelChoice, request: QuantRequest) -> Prediction:
        return Prediction(request.target_bpw or 4.5, int((request.target_bpw or 4.5) * model.params / 8), None,
                          "KL is predicted after the sensitivity pass")

    def allocate(self, table, target_bpw, pins, request=None) -> Allocation:
        return greedy(table, target_bpw, pins)

    def frontier(self, table, pins, points: int = 12):
        out = []
        for i in range(points):
            try:
                a = greedy(table, 2.6 + 6.0 * i / (points - 1), pins)
            except QuantError:
                continue
            out.append((a.bpw, a.kl))
        return out

    def start(self, request: QuantRequest):
        request.validate()
        self.started.append(request)
        record = jobs.create("quantize", request.to_dict())
        return self.app.engine.submit(lambda ctx: self._run(ctx, request, record), kind="quantize")

    def _run(self, ctx, request: QuantRequest, record):
        n = len(self.table.tensors)
        for i, t in enumerate(self.table.tensors):
            ctx.check()
            if self.gate is not None and i == n // 2:
                self.gate.wait(10)
                ctx.check()
            ctx.emit(LayerScored.of(ctx.job_id, t, i + 1, n))
            ctx.emit(Progress(ctx.job_id, "sensitivity", i + 1, n, f"scored {t.path}", {"eta_s": 5.0 * (n - i - 1)}))
        for phase in ("allocate", "write", "verify", "evaluate"):
            if phase == self.fail_in:
                self.fail_in = None
                ctx.emit(Progress(ctx.job_id, phase, 0, 4, phase))
                record.finish("failed", error=f"{phase} broke")
                raise QuantError(f"{phase} broke")
            ctx.emit(Progress(ctx.job_id, phase, 1, 1, phase))
        self.saved_scores = True
        result = {**RESULT, "output": request.output, "model": request.model}
        record.finish("done", result=result)
        return result

    def measure(self, model_path: str, settings):
        """The sensitivity pass alone: a LayerScored and a Progress per tensor, the table as the result."""
        self.measured = [*getattr(self, "measured", []), model_path]

        def job(ctx):
            n = len(self.table.tensors)
            for i, t in enumerate(self.table.tensors):
                ctx.check()
                ctx.emit(LayerScored.of(ctx.job_id, t, i + 1, n))
                ctx.emit(Progress(ctx.job_id, "sensitivity", i + 1, n, "exact pass"))
            self.saved_scores = True
            return self.table

        return self.app.engine.submit(job, kind="sensitivity")

    def interrupted(self):
        return jobs.interrupted("quantize")

    def resume(self, record):
        record.claim()
        request = QuantRequest.from_dict(record.request)
        return self.app.engine.submit(lambda ctx: self._run(ctx, request, record), kind="quantize")

    def discard(self, record) -> None:
        jobs.discard(record)

    def run_evals(self, base: str, quant: str, tasks: list[str], limit: int | None):
        """Scripted: progress per task, then a capability dict (this model at 25%, the base at 50%)."""
        self.evals.append((base, quant, list(tasks), limit))

        def job(ctx) -> dict:
            for t in tasks:
                ctx.emit(Progress(ctx.job_id, f"{Path(quant).name} {t}", 1, 2, "", {"eta_s": 3.0}))
                ctx.check()
            n = limit or 10
            return {"tasks": {t: {"accuracy": 0.25, "low": 0.1, "high": 0.5, "n": n, "base_accuracy": 0.5}
                              for t in tasks},
                    "capability": 0.25, "base_capability": 0.5}

        return self.app.engine.submit(job, kind="eval")

    def past_results(self, model_path: str):
        return [r for r in jobs.all_jobs("quantize")
                if r.status == "done" and r.result and r.request.get("model") == model_path]

    def request_from_profile(self, profile):
        return request_from_profile(profile)

    def save_profile(self, name, request, base=None):
        return save_to_profile(name, request, base)
