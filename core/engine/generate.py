"""Chat generation on the engine thread: streamed tokens, prompt-cache reuse, drafter, effort, stats.

`chat_job(request)` returns a job function for `engine.submit`. It renders the conversation with the
model's chat template, reuses the KV cache of the previous turn (only the new suffix is prefilled),
decodes through mlx-lm's `generate_step` / `speculative_generate_step`, and emits a `TokenEvent` per
token plus `StatsEvent`s (live ones ~4 times a second, a final one). Cancelling stops within one token:
the job then finishes normally with the partial answer and `status="stopped"`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import JobCancelled, TemperError
from .events import Event, Progress
from .kv_cache import guard_kernels, unsupported_layers
from .kv_config import describe, plan_for
from .models import ensure_loaded
from .prompt_cache import ChatSession, reuse_session
from .reasoning import BudgetProcessor, Markers, ThinkingSplitter, budget_for, check_effort, prompt_state
from .sampling import SamplingSettings, build_processors, build_sampler
from .speculative import check_rollback, get_drafter, loss_note, needs_build

LIVE_EVERY_S = 0.25
MEASURED_TOKENS = 16  # answers at least this long give a decode speed worth comparing (drafter or not)
_BASELINES = "decode_tps_without_drafter"  # ctx.state: model path -> its last decode tok/s without a drafter


@dataclass
class ChatRequest:
    model: str
    messages: list[dict[str, str]]  # role/content, system message first if any
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    effort: str | None = None        # None: the template's default
    budgets: dict[str, int | None] | None = None
    drafter: str | None = None       # None, "self" or a model folder / Hub id
    num_draft_tokens: int = 3
    kv_bits: int | None = None       # None: kv_config.json if present, else float; 0: float; 4 / 8
    context_limit: int | None = None  # None: the model's max_position_embeddings


@dataclass
class GenerationStats:
    prompt_tokens: int = 0      # the whole rendered conversation
    prefill_tokens: int = 0     # of which actually computed this turn (the rest came from the cache)
    ttft_s: float = 0.0         # from the request, model (and drafter) loading included: see load_s
    load_s: float = 0.0         # of which loading the model / building the drafter (first turn only)
    prefill_tps: float = 0.0
    decode_tps: float = 0.0
    tokens: int = 0
    thinking_tokens: int = 0
    thinking_s: float = 0.0
    elapsed_s: float = 0.0
    drafted: int = 0
    accepted: int = 0
    acceptance: float | None = None
    peak_memory_gb: float = 0.0
    context_used: int = 0
    context_limit: int = 0
    finish: str = ""            # stop | length | context | stopped
    drafter: str = ""
    kv: str = ""                # the KV cache: float, uniform 8-bit, kv_config.json (...)
    notes: list[str] = field(default_factory=list)  # e.g. "no thinking mode: effort ignored"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TokenEvent(Event):
    text: str
    token: int
    from_draft: bool = False
    thinking: bool = False


@dataclass(frozen=True)
class ThinkingDone(Event):
    tokens: int
    seconds: float


@dataclass(frozen=True)
class StatsEvent(Event):
    stats: GenerationStats
    final: bool = False


@dataclass
class ChatResult:
    text: str
    thinking: str
    status: str                 # ok | stopped | length
    stats: GenerationStats
    tokens: list[int] = field(default_factory=list)


def context_limit(config: dict[str, Any]) -> int:
    for source in (config, config.get("text_config") or {}):
        for key in ("max_position_embeddings", "max_seq_len", "n_positions", "seq_length"):
            if isinstance(source.get(key), int):
                return source[key]
    return 4096


def render(tokenizer, messages: list[dict[str, str]], effort: str | None) -> list[int]:
    kwargs: dict[str, Any] = {}
    if effort is not None and tokenizer.has_thinking:
        kwargs["enable_thinking"] = effort != "none"
    if getattr(tokenizer, "has_chat_template", False):
        tokens = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, **kwargs)
        return list(tokens)
    text = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\n\nassistant:"
    return list(tokenizer.encode(text))


def chat_job(request: ChatRequest):
    def job(ctx) -> ChatResult:
        return run_chat(ctx, request)

    return job


def run_chat(ctx, request: ChatRequest) -> ChatResult:
    import mlx.core as mx
    from mlx_lm.generate import generate_step, speculative_generate_step

    t0 = time.perf_counter()
    effort = check_effort(request.effort)
    sampling = request.sampling.validate()
    lm = ensure_loaded(ctx.state, request.model)
    tok = lm.tokenizer
    prompt = render(tok, request.messages, effort)
    limit = request.context_limit or context_limit(lm.config)
    if len(prompt) >= limit:
        raise TemperError(
            f"the conversation is {len(prompt)} tokens and the context holds {limit}: "
            "start a new chat or delete earlier messages"
        )
    max_tokens = min(sampling.max_tokens, limit - len(prompt))
    plan = plan_for(lm.model, lm.path, request.kv_bits)
    if request.drafter:
        check_rollback(lm.model, lm.name)  # before building a drafter for nothing
    progress = None
    if needs_build(ctx.state, lm, request.drafter):
        what = f"building the self-drafter (a 3-bit copy of {lm.name}, once per model)"
        ctx.emit(Progress(ctx.job_id, "drafter", 0, None, f"{what}…"))

        def progress(done: int, total: int) -> None:
            ctx.emit(Progress(ctx.job_id, "drafter", done, total, f"{what}: {done * 100 // total}%…"))
            ctx.check()
    drafter = get_drafter(ctx.state, lm, request.drafter, progress)
    if drafter is not None:
        check_rollback(drafter.model, f"the drafter {drafter.label}")
    t_loaded = time.perf_counter()
    extra = request.num_draft_tokens if drafter is not None else 0
    session: ChatSession = reuse_session(ctx.state, lm, drafter, plan, prompt, extra)
    suffix = prompt[session.reused:]

    markers = Markers.of(tok)
    initial = prompt_state(prompt, markers) if markers else None
    processors = build_processors(sampling)
    budget = None
    if markers and effort not in (None, "none"):
        budget = BudgetProcessor(markers, budget_for(effort, request.budgets), initial,
                                 seen=1 if drafter else len(suffix))
        processors.append(budget)
    sampler = build_sampler(sampling)

    mx.reset_peak_memory()
    if drafter is None:
        steps = ((t, lp, False) for t, lp in generate_step(
            mx.array(suffix), lm.model, max_tokens=max_tokens, sampler=sampler,
            logits_processors=processors or None, prompt_cache=session.cache))
    else:
        steps = speculative_generate_step(
            mx.array(suffix), lm.model, drafter.model, num_draft_tokens=request.num_draft_tokens,
            max_tokens=max_tokens, sampler=sampler, logits_processors=processors or None,
            prompt_cache=session.cache + session.draft_cache)

    steps = guard_kernels(steps, plan)
    stats = GenerationStats(prompt_tokens=len(prompt), prefill_tokens=len(suffix), context_limit=limit,
                            drafter=drafter.label if drafter else "", load_s=t_loaded - t0,
                            kv=describe(plan))
    if plan is not None and (kinds := unsupported_layers(session.cache)):
        stats.notes.append(f"{', '.join(kinds)} layers keep their state in float")
    if effort not in (None, "none") and markers is None:
        stats.notes.append(f"{lm.name} has no thinking mode: effort {effort} ignored")
    splitter = ThinkingSplitter(markers, initial)
    detok = tok.detokenizer
    channel = "answer"
    parts: dict[str, list[str]] = {"think": [], "answer": []}
    generated: list[int] = []
    rounds = 0
    last_from_draft = False
    t_first = t_last = t_think = None
    next_live = 0.0
    finish = "length"

    def show(token: int, kind: str, from_draft: bool) -> None:
        nonlocal channel, detok
        if kind != channel:
            detok.finalize()
            if rest := detok.last_segment:
                parts[channel].append(rest)
                ctx.emit(TokenEvent(ctx.job_id, rest, -1, False, channel == "think"))
            detok = tok.detokenizer
            channel = kind
        detok.add_token(token)
        segment = detok.last_segment
        parts[kind].append(segment)
        ctx.emit(TokenEvent(ctx.job_id, segment, token, from_draft, kind == "think"))

    def fill(now: float) -> None:
        stats.tokens = len(generated)
        stats.elapsed_s = now - t0
        if t_first is not None:
            stats.ttft_s = t_first - t0
            stats.prefill_tps = len(suffix) / max(t_first - t_prefill, 1e-9)
            if len(generated) > 1:
                stats.decode_tps = (len(generated) - 1) / max(now - t_first, 1e-9)
        if drafter is not None:
            # a round = accepted drafts + one token of the verifier; a round cut short (end of turn or
            # max tokens on a drafted token) has no verifier token but was drafted all the same
            open_round = 1 if generated and last_from_draft else 0
            stats.drafted = (rounds + open_round) * request.num_draft_tokens
            stats.acceptance = stats.accepted / stats.drafted if stats.drafted else None
        stats.peak_memory_gb = mx.get_peak_memory() / 1e9
        stats.context_used = len(prompt) + len(generated)

    t_prefill = time.perf_counter()
    try:
        for token, _, from_draft in steps:
            now = time.perf_counter()
            if t_first is None:
                t_first = now
            t_last = now
            generated.append(token)
            last_from_draft = from_draft
            if from_draft:
                stats.accepted += 1
            else:
                rounds += 1
            if token in tok.eos_token_ids:
                finish = "stop"
                break
            for t, kind in splitter.feed(token):
                show(t, kind, from_draft)
            while splitter.transitions:
                if splitter.transitions.pop(0) == "open":
                    t_think = now
                elif t_think is not None:
                    stats.thinking_s += now - t_think
                    ctx.emit(ThinkingDone(ctx.job_id, splitter.state.count, now - t_think))
                    t_think = None
            if now >= next_live:
                fill(now)
                ctx.emit(StatsEvent(ctx.job_id, GenerationStats(**{**asdict(stats), "notes": list(stats.notes)})))
                next_live = now + LIVE_EVERY_S
            ctx.check()
        else:
            finish = "context" if max_tokens < sampling.max_tokens else "length"
    except JobCancelled:
        finish = "stopped"
    finally:
        steps.close()
    for t, kind in splitter.flush():
        show(t, kind, False)
    detok.finalize()
    if rest := detok.last_segment:
        parts[channel].append(rest)
        ctx.emit(TokenEvent(ctx.job_id, rest, -1, False, channel == "think"))
    if t_think is not None:
        stats.thinking_s += (t_last or t_think) - t_think
    session.remember(prompt + generated)
    fill(t_last or time.perf_counter())
    baselines: dict[str, float] = ctx.state.setdefault(_BASELINES, {})
    if len(generated) >= MEASURED_TOKENS and finish != "stopped":
        if drafter is None:
            baselines[str(lm.path)] = stats.decode_tps
        elif note := loss_note(stats.decode_tps, baselines.get(str(lm.path)), stats.acceptance,
                                     request.num_draft_tokens):
            stats.notes.append(note)
    stats.elapsed_s = time.perf_counter() - t0
    stats.finish = finish
    stats.thinking_tokens = _thinking_count(prompt, generated, markers, initial)
    ctx.emit(StatsEvent(ctx.job_id, stats, final=True))
    status = {"stop": "ok", "stopped": "stopped"}.get(finish, "length")
    return ChatResult("".join(parts["answer"]), "".join(parts["think"]), status, stats, generated)


def _thinking_count(prompt, generated, markers, initial) -> int:
    if markers is None:
        return 0
    from .reasoning import advance

    state = initial.copy()
    count = 0
    for t in generated:
        if advance(state, t, markers) == "think":
            count += 1
    return count
