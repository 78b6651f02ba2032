"""The runner on a real (tiny) model through the engine: metric definitions against hand timing, EOS off,
KV and weight bytes, batching, progress events and cancel."""

from __future__ import annotations

import importlib
import time
import types

import pytest
from temper.core.bench import runner
from temper.core.bench.batch import batch_request, run_batch
from temper.core.bench.prompts import PromptMaker
from temper.core.bench.roofline import count_params, kv_bytes, weight_bytes
from temper.core.bench.runner import BenchConfig, BenchProgress, run_suite, timed_request
from temper.core.engine.models import ensure_loaded
from temper.core.errors import JobCancelled, TemperError


class _Ctx:
    job_id = 0

    def check(self) -> None:
        pass

    def emit(self, event) -> None:
        pass


def test_metrics_match_hand_timing(engine, tiny_llama, monkeypatch) -> None:
    """Time the real token generator from the outside and compare with what the runner records."""
    gen = importlib.import_module("mlx_lm.generate")  # the package re-exports a function of that name
    real = gen.generate_step
    stamps: dict[str, float] = {}

    def hand_timed(*args, **kwargs):
        stamps.clear()
        stamps["start"] = time.perf_counter()
        for item in real(*args, **kwargs):
            stamps.setdefault("first", time.perf_counter())
            stamps["last"] = time.perf_counter()
            yield item

    monkeypatch.setattr(gen, "generate_step", hand_timed)

    def job(ctx):
        lm = ensure_loaded(ctx.state, tiny_llama)
        timed_request(ctx, lm.model, [5] * 8, 4)  # warm-up
        return timed_request(ctx, lm.model, list(range(10, 58)), 24)[0]

    t = engine.run(job)
    hand_ttft = stamps["first"] - stamps["start"]
    hand_decode = stamps["last"] - stamps["first"]
    assert (t.prompt_tokens, t.generated) == (48, 24)
    assert t.ttft == pytest.approx(hand_ttft, abs=0.003)  # TTFT = first token − start
    assert t.decode_time == pytest.approx(hand_decode, abs=0.003)
    assert t.tpot == pytest.approx(t.decode_time / 23)  # TPOT = decode time / (n − 1)
    assert t.throughput == pytest.approx((48 + 24) / t.e2e)  # (prompt + generated) / e2e
    assert t.e2e == pytest.approx(t.ttft + t.decode_time)
    assert t.peak_memory > 0 and t.rss > 0


def test_definitions_on_a_fake_clock(engine, tiny_llama, monkeypatch) -> None:
    ticks = iter(range(1000))
    monkeypatch.setattr(runner, "time", types.SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    t = engine.run(lambda ctx: timed_request(ctx, ensure_loaded(ctx.state, tiny_llama).model, [7] * 20, 6)[0])
    # clock: start = 0, tokens at 1..6
    assert (t.ttft, t.decode_time, t.tpot, t.e2e) == (1.0, 5.0, 1.0, 6.0)
    assert t.prefill_tps == 20.0 and t.decode_tps == 1.0 and t.throughput == pytest.approx(26 / 6)


def test_eos_never_stops_a_run(engine, tiny_llama) -> None:
    """A model that always prefers EOS still generates exactly tg tokens."""
    import mlx.core as mx

    def job(ctx):
        lm = ensure_loaded(ctx.state, tiny_llama)
        eos = lm.config["eos_token_id"]

        class EosFirst:
            layers = lm.model.layers

            def __call__(self, x, cache=None, **kw):
                logits = lm.model(x, cache=cache)
                return logits + mx.where(mx.arange(logits.shape[-1]) == eos, 1e4, 0.0)

        return timed_request(ctx, EosFirst(), [9] * 12, 10)

    timing, tokens = engine.run(job)
    assert timing.generated == 10 and len(tokens) == 10
    assert set(tokens) == {engine.run(lambda ctx: ensure_loaded(ctx.state, tiny_llama).config["eos_token_id"])}


def test_kv_and_weight_bytes(engine, tiny_llama) -> None:
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.generate import generate_step
    from mlx_lm.models.cache import make_prompt_cache
    from mlx_lm.utils import load_model

    def job(ctx):
        lm = ensure_loaded(ctx.state, tiny_llama)
        cache = make_prompt_cache(lm.model)
        for _ in generate_step(mx.array([3] * 30), lm.model, max_tokens=5, prompt_cache=cache):
            pass
        kv = kv_bytes(cache)
        wb = weight_bytes(lm.model, lm.config)
        params = count_params(lm.model)
        qmodel, _ = load_model(tiny_llama)
        nn.quantize(qmodel, group_size=64, bits=4)
        return kv, wb, params, weight_bytes(qmodel, lm.config), count_params(qmodel), lm.config

    kv, wb, params, qwb, qparams, cfg = engine.run(job)
    hidden, vocab, layers = cfg["hidden_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    head_dim = hidden // cfg["num_attention_heads"]
    # K and V, per layer, kv heads × head dim × (30 prompt + 5 generated) float32 positions
    assert kv == layers * 2 * cfg["num_key_value_heads"] * head_dim * 35 * 4
    assert wb.embedding == vocab * hidden * 4
    assert wb.embedding_read == hidden * 4  # untied: one row gathered
    assert wb.per_token == wb.total - vocab * hidden * 4 + hidden * 4
    assert qparams == params  # packing does not change the parameter count
    assert qwb.per_token < wb.per_token / 3  # 4-bit + scales vs float32


def test_tied_embedding_is_read_in_full(engine, tiny_gemma4) -> None:
    def job(ctx):
        lm = ensure_loaded(ctx.state, tiny_gemma4)
        return weight_bytes(lm.model, lm.config), lm.config

    wb, cfg = engine.run(job)
    table = cfg["vocab_size"] * cfg["hidden_size"] * 4
    assert cfg["tie_word_embeddings"] and wb.embedding_read >= table


def test_batching_counts_every_request(engine, tiny_llama) -> None:
    def job(ctx):
        lm = ensure_loaded(ctx.state, tiny_llama)
        return run_batch(_Ctx(), lm.model, PromptMaker(512, {0, 1, 2, 3, 4}), [1, 3], pp=16, tg=6,
                         repeats=2)

    rows = engine.run(job)
    assert [r.concurrency for r in rows] == [1, 3]
    assert [r.generated for r in rows] == [6, 18]  # per repetition: every request got all its tokens
    assert [r.n for r in rows] == [2, 2]
    assert all(len(r.ttft) == 2 * r.concurrency and all(0 < x < 2 * r.e2e for x in r.ttft) for r in rows)
    assert rows[0].speedup == 1.0 and rows[1].speedup > 0
    single = engine.run(lambda ctx: batch_request(_Ctx(), ensure_loaded(ctx.state, tiny_llama).model,
                                                  [[5 + i] * 16 for i in range(3)], 6))
    assert single.throughput == pytest.approx((3 * 16 + 18) / single.e2e)  # (prompt + generated) / e2e
    assert single.generated == 18 and single.n == 1


def test_suite_emits_progress_and_roofline(engine, tiny_llama) -> None:
    config = BenchConfig(pp=[16, 32], tg=[4], n=2, batch=[2], bandwidth=True)
    job = engine.submit(lambda ctx: run_suite(ctx, ensure_loaded(ctx.state, tiny_llama), config))
    events = [e for e in job.events(timeout=120) if isinstance(e, BenchProgress)]
    result = job.result()
    runs = [e for e in events if e.phase == "run" and "decode_tps" in e.data]
    assert len(runs) == 4 and events[-1].phase == "done" and events[-1].done == events[-1].total
    assert [r.test for r in result.rows] == ["pp16+tg4", "pp32+tg4"]
    assert all(len(r.runs) == 2 for r in result.rows)  # the warm-up is not counted
    assert result.bandwidth["measured_gbs"] > 0
    assert result.rows[0].roofline.measured_gbs == result.bandwidth["measured_gbs"]
    assert result.machine["mlx"] and result.machine["device"]
    assert len(result.batch) == 1 and result.batch[0].generated == 8 and result.batch[0].n == 2


def test_cancel_stops_the_suite(engine, tiny_llama) -> None:
    config = BenchConfig(pp=[16], tg=[500], n=50, bandwidth=False)
    job = engine.submit(lambda ctx: run_suite(ctx, ensure_loaded(ctx.state, tiny_llama), config))
    for event in job.events(timeout=120):
        if isinstance(event, BenchProgress) and event.phase == "run":
            job.cancel()
    with pytest.raises(JobCancelled):
        job.result(timeout=60)


@pytest.mark.parametrize("bad", [
    dict(pp=[]), dict(tg=[1]), dict(n=0), dict(batch=[0]), dict(pp=[0]),
])
def test_bad_config_is_a_clear_error(bad) -> None:
    with pytest.raises(TemperError):
        BenchConfig(**bad).validate()
