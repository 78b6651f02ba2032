"""The ETA of long phases: steps of unequal cost weighted by their work units, the first step (loading,
compilation) left out of the rate, one rule for the CLI and the app (core/engine/eta.py).

The reproduction: SmolLM2-135M's fast sensitivity pass on the 2-core CPU counted 16 Fisher sequences
(6.6 s each) and 211 tensor scorings (58 s together) as 227 equal steps, so the ETA read ~25 minutes for
a pass of ~3 (docs/benchmarks/progress_eta.md)."""

from __future__ import annotations

import time

import pytest
from temper.core import jobs
from temper.core.engine.events import Progress
from temper.core.quant.pipeline import RecordingContext

# SmolLM2-135M's tensors (rows, cols) per block, its tied embedding, and what its fast pass took (measured)
BLOCK = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)]
EMBED = (49152, 576)
PARAMS, SEQ, SEQUENCES = 134_515_008, 256, 16
SEQUENCE_S, FIRST_SEQUENCE_S, SCORING_S = 6.6, 17.0, 58.0


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Collect:
    job_id = 7

    def __init__(self) -> None:
        self.events: list = []

    def emit(self, event) -> None:
        self.events.append(event)

    def check(self) -> None:
        pass


def fisher_pass() -> tuple[list[float], list[float]]:
    """(seconds, work units) per step of the pass: the sequences, then each tensor scored; the scoring
    time spread over tensors by elements × candidates, as the fisher_scoring kernels spend it."""
    from temper.core.quant.work import fisher_steps

    shapes = [EMBED] + BLOCK * 30
    scored = [(r * c, 18 if c % 128 == 0 else 12) for r, c in shapes]
    weight = [e * k for e, k in scored]
    seconds = [FIRST_SEQUENCE_S] + [SEQUENCE_S] * (SEQUENCES - 1) + [SCORING_S * w / sum(weight) for w in weight]
    return seconds, fisher_steps(PARAMS, [SEQ] * SEQUENCES, scored)


def run(ctx: RecordingContext, clock: FakeClock, seconds: list[float], work: list[float]) -> list[tuple]:
    """Emit the steps as the Fisher pass does (its start, then each step); per step (time elapsed, ETA given, time really left)."""
    total, done, start, seen = sum(work), 0.0, clock.t, []
    end = start + sum(seconds)
    ctx.emit(Progress(ctx.job_id, "sensitivity", 0, len(seconds), "start",
                      {"step": "fisher", "work": 0.0, "work_total": total}))
    for i, (s, w) in enumerate(zip(seconds, work, strict=True)):
        clock.t += s
        done += w
        ctx.emit(Progress(ctx.job_id, "sensitivity", i + 1, len(seconds), f"step {i + 1}",
                          {"step": "fisher", "work": done, "work_total": total}))
        seen.append((clock.t - start, ctx._ctx.events[-1].data.get("eta_s"), end - clock.t))
    return seen


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(time, "monotonic", fake)
    return fake


def test_the_fisher_pass_eta_is_close_at_10_25_and_50_percent(clock) -> None:
    seconds, work = fisher_pass()
    ctx = RecordingContext(Collect(), jobs.create("quantize", {"model": "m"}))
    seen = run(ctx, clock, seconds, work)
    whole = sum(seconds)
    for share in (0.10, 0.25, 0.50):
        elapsed, eta, left = next(row for row in seen if row[0] >= share * whole)
        assert eta is not None and abs(eta - left) <= 0.25 * left, (share, eta, left)


def test_the_first_step_is_left_out_of_the_rate() -> None:
    from temper.core.engine.eta import EtaClock

    now = [0.0]
    clock = EtaClock(lambda: now[0])
    assert clock.estimate("k", 0, 10) is None            # the start: nothing measured
    now[0] = 30.0                                         # a first step paying for loading and compiling
    assert clock.estimate("k", 1, 10) is None             # alone it would say 270 s: nothing said yet
    for done in range(2, 6):
        now[0] += 2.0
        eta = clock.estimate("k", done, 10)
    assert eta == pytest.approx(2.0 * 5)                  # 2 s a step from the end of the first one on
    now[0] += 1.0
    assert clock.estimate("k", 0, 10) is None             # counting again from zero: a new run


def test_a_burst_after_the_first_step_does_not_say_nearly_nothing_is_left() -> None:
    """GPTQ rounds tensors that share their inputs in one go: their ticks come at once."""
    from temper.core.engine.eta import EtaClock

    now = [0.0]
    clock = EtaClock(lambda: now[0])
    clock.estimate("q", 0, 100)
    now[0] = 2.0
    clock.estimate("q", 10, 100)                          # the first step: 10 units in 2 s
    now[0] = 2.001
    assert clock.estimate("q", 15, 100) == pytest.approx(2.001 / 15 * 85)   # since the start, not 0.001 s
    now[0] = 4.0
    assert clock.estimate("q", 20, 100) == pytest.approx(2.0 / 10 * 80)     # a step's worth since: its rate


def test_work_units_follow_each_steps_cost() -> None:
    from temper.core.quant.work import Tally, fisher_steps, gptq_tensor, rounded_tensor

    steps = fisher_steps(1000, [256, 256], [(4000, 12), (2000, 18)])
    assert steps[0] == steps[1] == 256_000 and steps[2] / steps[3] == pytest.approx(4000 * 12 / (2000 * 18))
    assert gptq_tensor(1536, 576, 4096) > gptq_tensor(576, 576, 4096) > gptq_tensor(192, 576, 4096)
    assert gptq_tensor(576, 1536, 4096) > gptq_tensor(1536, 576, 4096)   # the column loop grows with cols²
    assert rounded_tensor(49152, 576) > gptq_tensor(1536, 576, 4096)     # a vocabulary-sized table: no one step
    assert rounded_tensor(49152, 576, clip=False) < rounded_tensor(49152, 576)
    tally = Tally(10.0)
    assert tally.add(4.0) == {"work": 4.0, "work_total": 10.0}
    assert tally.add(9.0)["work"] == 10.0                             # never past the total


def test_a_scored_tensor_becomes_progress_with_an_eta(clock) -> None:
    from temper.core.engine.eta import EtaContext
    from temper.core.quant.sensitivity_run import LayerScored

    out = Collect()
    ctx = EtaContext(out)
    for i in range(1, 4):
        clock.t += 1.0
        ctx.emit(LayerScored(7, f"layers.{i}.q", {"4": 0.1}, i, 10, "exact"))
    scored = [e for e in out.events if isinstance(e, LayerScored)]
    progress = [e for e in out.events if isinstance(e, Progress)]
    assert len(scored) == len(progress) == 3                  # the Layers view keeps its rows
    assert progress[-1].message == "exact layers.3.q" and progress[-1].data["eta_s"] == pytest.approx(7.0)


def test_a_real_fast_pass_and_quantize_carry_their_work_units(engine, tiny_llama, tmp_path) -> None:
    """The producers' side: the Fisher pass starts at 0, gives every sequence the same units and each tensor
    its elements × candidates; the quantize phase's units end at their total; every count gets an eta_s."""
    from temper.core.quant.pipeline import quantize
    from temper.core.quant.request import QuantRequest

    request = QuantRequest(model=str(tiny_llama), recipe="temper", target_bpw=4.5, samples=3, seq_len=32,
                           sensitivity_mode="fast", bits=[2, 4, 8], group_sizes=[64], evaluate=False,
                           output=str(tmp_path / "q"))
    job = engine.submit(lambda ctx: quantize(ctx, request), kind="quantize")
    events = [e for e in job.events() if isinstance(e, Progress)]
    job.result()
    fisher = [e for e in events if e.data.get("step") == "fisher"]
    work = [e.data["work"] for e in fisher]
    assert fisher[0].done == 0 and work[0] == 0 and work == sorted(work)
    assert work[-1] == pytest.approx(fisher[-1].data["work_total"])
    steps = [b - a for a, b in zip(work, work[1:], strict=False)]
    assert steps[0] == steps[1] == steps[2] and len(set(steps[3:])) > 1     # 3 sequences, then unlike tensors
    assert all("eta_s" in e.data for e in fisher[3:])
    quant = [e for e in events if e.phase == "quantize" and e.total]
    assert quant[-1].data["work"] == pytest.approx(quant[-1].data["work_total"]) and quant[-1].done == quant[-1].total
    assert len({round(b.data["work"] - a.data["work"]) for a, b in zip(quant, quant[1:], strict=False)}) > 1


def test_an_exact_pass_weighs_a_tensor_by_the_blocks_it_runs(engine, tiny_llama, tmp_path) -> None:
    """Blocks before a tensor's own are replayed: a late tensor costs less than an early one."""
    import numpy as np
    from temper.core.quant.calibration import TokenSet
    from temper.core.quant.sensitivity import run_sensitivity

    tokens = TokenSet("t", "calibration", np.random.default_rng(0).integers(0, 200, (1, 16)).astype(np.int32))
    job = engine.submit(lambda ctx: run_sensitivity(ctx, tiny_llama, ["affine:4b:g64"], tokens, mode="exact",
                                                    out=tmp_path / "exact.json"))
    events = [e for e in job.events() if isinstance(e, Progress) and e.data.get("step") == "scored:exact"]
    job.result()
    cost = {e.message.split()[-1]: e.data["work"] for e in events}
    steps = {p: w - prev for (p, w), prev in zip(cost.items(), [0.0, *cost.values()], strict=False)}
    first = next(p for p in steps if ".layers.0." in p)
    last = next(p for p in reversed(steps) if ".layers." in p)
    assert steps[first] > steps[last] > 0 and events[-1].data["work"] == pytest.approx(events[-1].data["work_total"])
