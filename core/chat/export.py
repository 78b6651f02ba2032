"""Export a conversation to Markdown (atomic write)."""

from __future__ import annotations

import time
from pathlib import Path

from ..atomic import write_text
from .store import ChatStore, Conversation, Message


def to_markdown(conv: Conversation, messages: list[Message]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(conv.created))
    lines = [f"# {conv.title}", "", f"- model: `{conv.model or '?'}`", f"- started: {when}"]
    changes = [m for m in messages if m.role == "system"]
    first = changes[0].stats.get("previous", "") if changes else conv.system_prompt   # in effect at the start
    if first:
        lines += ["", "**System**", "", *[f"> {line}" for line in first.splitlines()]]
    for msg in messages:
        if msg.role == "system":
            said = [f"> {line}" for line in msg.content.splitlines()] if msg.content else ["(cleared)"]
            lines += ["", "**System prompt changed** (from here on)", "", *said]
            continue
        who = "You" if msg.role == "user" else "Assistant"
        note = "" if msg.status in ("ok", "") else f" _({msg.status})_"
        lines += ["", f"## {who}{note}", ""]
        if msg.thinking:
            lines += ["<details><summary>Thinking</summary>", "", msg.thinking.strip(), "", "</details>", ""]
        lines.append(msg.content.rstrip())
        stats = msg.stats or {}
        if stats.get("tokens"):
            lines += ["", f"<sub>{stats_line(stats)}</sub>"]
    return "\n".join(lines).rstrip() + "\n"


def stats_line(stats: dict) -> str:
    """TTFT, decode tok/s, tokens, elapsed and, with a drafter, the acceptance rate: one line."""
    parts = [f"TTFT {stats.get('ttft_s', 0) * 1000:.0f} ms",
             f"{stats.get('decode_tps', 0):.1f} tok/s",
             f"{stats.get('tokens', 0)} tokens",
             f"{stats.get('elapsed_s', 0):.1f} s"]
    if stats.get("acceptance") is not None:
        parts.append(f"accept {stats['acceptance'] * 100:.0f}%")
    if stats.get("prefill_tokens") is not None and stats.get("prompt_tokens"):
        parts.append(f"prefill {stats['prefill_tokens']}/{stats['prompt_tokens']}")
    parts += stats.get("notes") or []
    return " · ".join(parts)


def new_notes(notes: list[str] | None, earlier: list[Message]) -> list[str]:
    """The notes of a new answer that no earlier message of the conversation carries: a note such as "no
    thinking mode: effort ignored" is said once, not on every answer's stats line."""
    seen = {n for m in earlier for n in (m.stats or {}).get("notes") or []}
    return [n for n in notes or [] if n not in seen]


def export(store: ChatStore, conversation_id: int, path: Path) -> Path:
    conv = store.get(conversation_id)
    write_text(Path(path), to_markdown(conv, store.messages(conversation_id)))
    return Path(path)
