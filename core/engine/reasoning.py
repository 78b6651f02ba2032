"""Reasoning effort: thinking on or off in the chat template, and a thinking-token budget.

none   = thinking off in the template (`enable_thinking=False`).
low / medium / high = thinking on, with a budget of thinking tokens (default 256 / 1024 / unlimited).
When the budget is spent the close marker (`</think>`, Gemma-4's `<channel|>`...) is forced as the
next token(s) and the answer begins. With thinking on, the first token is forced to open the block
if the template did not open it, so "effort" always means the model thinks first.

Forcing is a logits processor (the only token allowed is the next marker token), so it works the same
inside mlx-lm's plain and speculative decoding loops, for the chat model and the drafter alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TemperError

EFFORTS = ("none", "low", "medium", "high")
DEFAULT_BUDGETS: dict[str, int | None] = {"low": 256, "medium": 1024, "high": None}


# the thinking markers mlx-lm looks for (mlx_lm.tokenizer_utils._infer_thinking), as they appear in a folder's files
_THINK_MARKERS = ('"<think>"', '"<longcat_think>"', '"<|think:start|>"', "<|channel>", "<|open|>think")


def has_thinking_mode(folder: str | Path) -> bool:
    """Whether a model folder's tokenizer has a thinking mode, read from its files without loading anything
    (the Chat settings disable "effort" for models without one). True when unsure (unreadable files)."""
    texts = []
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "chat_template.json"):
        try:
            texts.append((Path(folder) / name).read_text(errors="replace"))
        except OSError:
            continue
    if not texts:
        return True
    return any(marker in text for text in texts for marker in _THINK_MARKERS)


def check_effort(effort: str | None) -> str | None:
    if effort is not None and effort not in EFFORTS:
        raise TemperError(f"unknown reasoning effort {effort!r}: use one of {', '.join(EFFORTS)}")
    return effort


def budget_for(effort: str | None, budgets: dict[str, int | None] | None = None) -> int | None:
    """Thinking tokens allowed at this effort (None = unlimited)."""
    if effort in (None, "none"):
        return None
    table = {**DEFAULT_BUDGETS, **(budgets or {})}
    value = table.get(effort)
    return None if value is None or value < 0 else int(value)


@dataclass(frozen=True)
class Markers:
    """Token ids of the thinking block's open and close markers (one token or several)."""

    start: tuple[int, ...]
    end: tuple[int, ...]

    @classmethod
    def of(cls, tokenizer) -> Markers | None:
        """From mlx-lm's TokenizerWrapper (None when the model has no thinking mode)."""
        if not getattr(tokenizer, "has_thinking", False):
            return None
        start = tuple(tokenizer._think_start_tokens or ())
        end = tuple(tokenizer._think_end_tokens or ())
        return cls(start, end) if start and end else None


@dataclass
class ThinkState:
    """Where a token stream stands: inside a thinking block or not, and thinking tokens so far."""

    thinking: bool = False
    count: int = 0          # thinking tokens in the current block (markers excluded)
    tail: tuple[int, ...] = ()
    opened: bool = False    # a block was opened in this answer (or by the prompt)

    def copy(self) -> ThinkState:
        return ThinkState(self.thinking, self.count, self.tail, self.opened)


def _partial(tail: tuple[int, ...], marker: tuple[int, ...]) -> int:
    """How many leading tokens of `marker` the end of `tail` already holds (0..len-1)."""
    for j in range(min(len(marker) - 1, len(tail)), 0, -1):
        if tail[-j:] == marker[:j]:
            return j
    return 0


def advance(state: ThinkState, token: int, markers: Markers) -> str:
    """Feed one token. Returns its kind: "open" / "close" (completes a marker), "think" or "answer"."""
    keep = max(len(markers.start), len(markers.end))
    state.tail = (state.tail + (token,))[-keep:]
    if state.thinking:
        if state.tail[-len(markers.end):] == markers.end:
            state.thinking = False
            return "close"
        state.count += 1
        return "think"
    if state.tail[-len(markers.start):] == markers.start:
        state.thinking, state.count, state.opened = True, 0, True
        return "open"
    return "answer"


def prompt_state(prompt: list[int], markers: Markers) -> ThinkState:
    """The state at the end of the prompt: some templates open the thinking block themselves."""
    state = ThinkState()
    start = _rfind(prompt, markers.start)
    if start >= 0 and _rfind(prompt, markers.end) < start:
        tail_from = start + len(markers.start)
        state = ThinkState(thinking=True, count=0, opened=True)
        for tok in prompt[tail_from:]:
            advance(state, tok, markers)
    return state


def _rfind(tokens: list[int], seq: tuple[int, ...]) -> int:
    n = len(seq)
    for i in range(len(tokens) - n, -1, -1):
        if tuple(tokens[i:i + n]) == seq:
            return i
    return -1


@dataclass
class BudgetProcessor:
    """A logits processor: open the block first (if asked), close it when `budget` thinking tokens are spent.

    mlx-lm hands processors the tokens seen so far: the prompt suffix in plain decoding, only the last
    prompt token in speculative decoding; `seen` says how many leading tokens are not generated. The
    state is a pure function of the generated tokens (memoised per position), so the rewinds of
    speculative decoding are handled."""

    markers: Markers
    budget: int | None
    initial: ThinkState
    seen: int
    force_open: bool = True
    _tokens: list[int] = field(default_factory=list)
    _states: list[ThinkState] = field(default_factory=list)
    forced: int = 0

    def __post_init__(self) -> None:
        self._states = [self.initial.copy()]

    def state_after(self, generated: list[int]) -> ThinkState:
        k = min(len(self._tokens), len(generated))
        while k > 0 and generated[:k] != self._tokens[:k]:
            k -= 1
        del self._tokens[k:]
        del self._states[k + 1:]
        for tok in generated[k:]:
            state = self._states[-1].copy()
            advance(state, tok, self.markers)
            self._tokens.append(tok)
            self._states.append(state)
        return self._states[-1]

    def next_forced(self, generated: list[int]) -> int | None:
        state = self.state_after(generated)
        if not state.thinking:
            if self.force_open and not state.opened:
                j = _partial(state.tail, self.markers.start) if generated else 0
                if j == len(generated):  # still at the very start of the answer
                    return self.markers.start[j]
            return None
        if self.budget is not None and state.count >= self.budget:
            return self.markers.end[_partial(state.tail, self.markers.end)]
        return None

    def __call__(self, tokens, logits):
        import mlx.core as mx

        generated = tokens[self.seen:].tolist() if tokens is not None else []
        forced = self.next_forced(generated)
        if forced is None:
            state = self._states[-1]
            # Once the block has closed, the answer may not reopen or re-close it: single-token markers
            # are banned there (a stray "</think>" in an answer is noise, and the close was ours to make).
            banned = [m[0] for m in (self.markers.start, self.markers.end) if len(m) == 1]
            if state.opened and not state.thinking and banned:
                ban = mx.zeros(logits.shape[-1], dtype=mx.bool_)
                for token in banned:
                    ban = ban | (mx.arange(logits.shape[-1]) == token)
                return mx.where(ban, mx.full(logits.shape, -mx.inf, logits.dtype), logits)
            return logits
        self.forced += 1
        mask = mx.arange(logits.shape[-1]) == forced
        return mx.where(mask, mx.zeros_like(logits), mx.full(logits.shape, -mx.inf, logits.dtype))


class ThinkingSplitter:
    """Sorts a generated token stream into thinking and answer tokens, holding back partial markers.

    `feed(token)` returns a list of (token, kind) ready to show, kind in "think" / "answer";
    marker tokens are swallowed (kind "open"/"close" is reported once through `events`)."""

    def __init__(self, markers: Markers | None, initial: ThinkState | None = None):
        self.markers = markers
        self.state = (initial or ThinkState()).copy()
        self._held: list[tuple[int, str]] = []
        self.transitions: list[str] = []

    def feed(self, token: int) -> list[tuple[int, str]]:
        if self.markers is None:
            return [(token, "answer")]
        was_thinking = self.state.thinking
        kind = advance(self.state, token, self.markers)
        if kind in ("open", "close"):
            self._held.clear()
            self.transitions.append(kind)
            return []
        target = self.markers.end if self.state.thinking else self.markers.start
        self._held.append((token, "think" if was_thinking else "answer"))
        keep = _partial(self.state.tail, target)  # the last `keep` tokens may still become a marker
        cut = max(len(self._held) - keep, 0)
        out, self._held = self._held[:cut], self._held[cut:]
        return out

    def flush(self) -> list[tuple[int, str]]:
        out, self._held = self._held, []
        return out
