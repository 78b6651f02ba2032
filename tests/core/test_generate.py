from __future__ import annotations

import pytest
from chat_helpers import MESSAGES, ask, forget_session, greedy
from temper.core.engine.generate import ChatRequest, TokenEvent, chat_job
from temper.core.engine.sampling import SamplingSettings
from temper.core.errors import TemperError


def test_tokens_stream_and_add_up_to_the_answer(engine, tiny_llama):
    result, tokens, stats = ask(engine, tiny_llama, effort="none")
    assert result.status in ("ok", "length")
    assert "".join(t.text for t in tokens) == result.text
    assert len([t for t in tokens if t.token >= 0]) == stats.tokens == len(result.tokens) - (result.status == "ok")
    assert stats.ttft_s > 0 and stats.decode_tps > 0 and stats.prefill_tps > 0
    assert stats.elapsed_s >= stats.ttft_s
    assert stats.context_used == stats.prompt_tokens + len(result.tokens)
    assert stats.context_limit == 2048 and stats.peak_memory_gb > 0


def test_cancel_stops_within_one_token_and_keeps_the_partial_answer(engine, tiny_llama):
    request = ChatRequest(str(tiny_llama), MESSAGES, greedy(500), effort="none")
    job = engine.submit(chat_job(request), kind="chat")
    seen = []

    def on_event(event):  # runs on the engine thread, right after each token is emitted
        if isinstance(event, TokenEvent) and event.job == job.id and event.token >= 0:
            seen.append(event)
            if len(seen) == 3:
                job.cancel()

    remove = engine.add_listener(on_event)
    try:
        result = job.result(60)
    finally:
        remove()
    assert result.status == "stopped" and result.stats.finish == "stopped"
    assert len(result.tokens) == 3
    assert result.text == "".join(e.text for e in seen) + result.text[len("".join(e.text for e in seen)):]


def test_second_turn_prefills_only_the_new_tokens_and_matches_a_cold_start(engine, tiny_llama):
    forget_session(engine)
    first, _, stats1 = ask(engine, tiny_llama, effort="none")
    assert stats1.prefill_tokens == stats1.prompt_tokens
    turn2 = MESSAGES + [{"role": "assistant", "content": first.text},
                        {"role": "user", "content": "And what about the user interface?"}]
    second, _, stats2 = ask(engine, tiny_llama, turn2, effort="none")
    tok = engine.run(lambda ctx: ctx.state["loaded_models"][tiny_llama.resolve()].tokenizer)
    prompt1 = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, enable_thinking=False)
    prompt2 = tok.apply_chat_template(turn2, add_generation_prompt=True, enable_thinking=False)
    held = list(prompt1) + first.tokens
    common = next(i for i, (a, b) in enumerate(zip(held, prompt2, strict=False)) if a != b)
    assert stats2.prompt_tokens == len(prompt2)
    assert stats2.prefill_tokens == len(prompt2) - common  # only the suffix after the shared prefix
    assert stats2.prefill_tokens < len(prompt2) - len(prompt1) + 10
    forget_session(engine)
    cold, _, cold_stats = ask(engine, tiny_llama, turn2, effort="none")
    assert cold_stats.prefill_tokens == len(prompt2)
    assert cold.tokens == second.tokens  # the reused cache gives the same answer


def test_regenerate_trims_the_cache_and_prefills_one_token(engine, tiny_llama):
    first, _, _ = ask(engine, tiny_llama, effort="none")
    again, _, stats = ask(engine, tiny_llama, effort="none")
    assert stats.prefill_tokens == 1
    assert again.tokens == first.tokens


def test_seeded_sampling_is_reproducible(engine, tiny_llama):
    hot = dict(temperature=1.0, top_p=0.9, top_k=50, min_p=0.01, repetition_penalty=1.2, max_tokens=16)
    a, _, _ = ask(engine, tiny_llama, sampling=SamplingSettings(seed=7, **hot), effort="none")
    b, _, _ = ask(engine, tiny_llama, sampling=SamplingSettings(seed=7, **hot), effort="none")
    c, _, _ = ask(engine, tiny_llama, sampling=SamplingSettings(seed=8, **hot), effort="none")
    assert a.tokens == b.tokens
    assert a.tokens != c.tokens


def test_context_overflow_is_refused_with_a_clear_message(engine, tiny_llama):
    with pytest.raises(TemperError, match="context holds 20"):
        engine.run(chat_job(ChatRequest(str(tiny_llama), MESSAGES, greedy(), effort="none", context_limit=20)))
    result, _, stats = ask(engine, tiny_llama, effort="none", context_limit=stats_prompt(engine, tiny_llama) + 5)
    assert stats.context_used <= stats.context_limit
    assert len(result.tokens) <= 5
    if result.status != "ok":
        assert stats.finish == "context"


def stats_prompt(engine, model) -> int:
    _, _, stats = ask(engine, model, effort="none", sampling=greedy(1))
    return stats.prompt_tokens


@pytest.fixture(scope="module")
def wide_heads(models_root, engine):
    """tiny llama with 32-wide heads: KV quantization needs head sizes in multiples of 32."""
    from temper.core.library.synthetic import build_model

    out = models_root / "tiny-llama-wide-heads"
    if not (out / "config.json").exists():
        engine.run(lambda ctx: build_model(out, "llama", overrides={"num_attention_heads": 2,
                                                                    "num_key_value_heads": 1}))
    return out


@pytest.mark.parametrize("bits", [4, 8])
def test_kv_cache_quantization_works_on_plain_caches(engine, wide_heads, bits):
    plain, _, _ = ask(engine, wide_heads, effort="none")
    result, _, stats = ask(engine, wide_heads, effort="none", kv_bits=bits)
    kinds = engine.run(lambda ctx: {type(c).__name__ for c in ctx.state["chat_session"].cache})
    assert kinds == {"QuantizedKVCache"}
    assert stats.tokens > 0 and result.status in ("ok", "length")
    if bits == 8:  # 8-bit keys/values barely move a greedy answer of a few tokens
        assert result.tokens[:4] == plain.tokens[:4]


def test_kv_quantization_refuses_heads_too_narrow(engine, tiny_llama):
    with pytest.raises(TemperError, match="heads are 16 wide"):
        engine.run(chat_job(ChatRequest(str(tiny_llama), MESSAGES, greedy(), effort="none", kv_bits=4)))


def test_kv_bits_zero_is_float_and_other_widths_are_refused(engine, wide_heads):
    result, _, stats = ask(engine, wide_heads, effort="none", kv_bits=0)
    assert stats.kv == "float"
    with pytest.raises(TemperError, match="kv bits must be 4 or 8"):
        engine.run(chat_job(ChatRequest(str(wide_heads), MESSAGES, greedy(), effort="none", kv_bits=3)))
