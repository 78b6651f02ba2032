"""One message in the chat log: role, a live thinking block (collapsible), the streamed Markdown answer,
and a status line (TTFT, decode tok/s, tokens, elapsed, acceptance)."""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from temper.core.chat.export import stats_line
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Collapsible, Markdown, Static
from textual.widgets.markdown import MarkdownStream

CODE_BLOCK = re.compile(r"```[^\n]*\n(.*?)(?:```|\Z)", re.S)


def chat_markdown() -> MarkdownIt:
    """Markdown as chat UIs read it: a single newline is a line break (a poem keeps its lines)."""
    md = MarkdownIt("gfm-like")
    md.core.ruler.push("soft_breaks_are_line_breaks", _hard_breaks)
    return md


def _hard_breaks(state) -> None:
    for token in state.tokens:
        for child in token.children or ():
            if child.type == "softbreak":
                child.type = "hardbreak"


def last_code_block(text: str) -> str | None:
    blocks = CODE_BLOCK.findall(text)
    return blocks[-1].rstrip("\n") if blocks else None


class ChatMessage(Vertical, can_focus=True):
    DEFAULT_CSS = """
    ChatMessage { height: auto; padding: 0 1; margin: 0 0 1 0; }
    ChatMessage:focus { background: $boost; }
    ChatMessage .role { color: $text-muted; text-style: bold; }
    ChatMessage.user .role { color: $accent; }
    ChatMessage .answer { margin: 0; }
    ChatMessage .answer > *:last-child { margin-bottom: 0; }
    ChatMessage.user .status { display: none; }
    ChatMessage Collapsible { margin: 0; padding: 0; border-top: none; }
    ChatMessage .thinking-text { color: $text-muted; }
    ChatMessage .status { color: $text-muted; }
    ChatMessage .status.stopped, ChatMessage .status.error { color: $warning; }
    """
    BINDINGS = [
        Binding("y", "copy", "Copy message", id="chat.message.copy"),
        Binding("c", "copy_code", "Copy code", id="chat.message.copy_code"),
    ]

    def __init__(self, role: str, content: str = "", *, thinking: str = "", status: str = "ok",
                 stats: dict | None = None, message_id: int | None = None) -> None:
        super().__init__(classes=role)
        self.role = role
        self.content = content
        self.thinking = thinking
        self.status = status
        self.stats = stats or {}
        self.message_id = message_id
        self._stream: MarkdownStream | None = None
        self.waiting = ""          # before the first token: what the answer waits for (queued, loading)
        self._think_stream: MarkdownStream | None = None

    def compose(self) -> ComposeResult:
        yield Static("You" if self.role == "user" else "Assistant", classes="role")
        if self.role == "assistant":
            collapsible = Collapsible(Markdown(self.thinking, classes="thinking-text", parser_factory=chat_markdown), title=self._think_title(),
                                      collapsed=True, classes="thinking")
            collapsible.display = bool(self.thinking)
            yield collapsible
        yield Markdown(self.content, classes="answer", parser_factory=chat_markdown)
        yield Static(self._status_text(), classes=f"status {self.status}")

    # -- streaming --------------------------------------------------------------------------------------
    @property
    def thinking_block(self) -> Collapsible:
        return self.query_one(".thinking", Collapsible)

    async def write(self, text: str) -> None:
        if not text:
            return
        self.content += text
        if self._stream is None:
            self._stream = Markdown.get_stream(self.query_one(".answer", Markdown))
        await self._stream.write(text)

    async def write_thinking(self, text: str) -> None:
        if not text:
            return
        block = self.thinking_block
        if not self.thinking:
            block.display = True
            block.collapsed = False
            block.title = "Thinking…"
        self.thinking += text
        if self._think_stream is None:
            self._think_stream = Markdown.get_stream(block.query_one(Markdown))
        await self._think_stream.write(text)

    def thinking_done(self, tokens: int, seconds: float) -> None:
        self.stats = {**self.stats, "thinking_tokens": tokens, "thinking_s": seconds}
        block = self.thinking_block
        block.title = self._think_title()
        block.collapsed = True

    def live(self, stats: dict) -> None:
        self.stats = stats
        self.query_one(".status", Static).update(self._status_text(live=True))

    async def finish(self, status: str, stats: dict | None = None, error: str = "") -> None:
        for stream in (self._stream, self._think_stream):
            if stream is not None:
                await stream.stop()
        self._stream = self._think_stream = None
        self.status = status
        if stats:
            self.stats = stats
        if error:
            self.stats = {**self.stats, "error": error}
        if self.role == "assistant" and self.thinking:
            self.thinking_block.title = self._think_title()
            self.thinking_block.collapsed = True
        status_line = self.query_one(".status", Static)
        status_line.set_classes(f"status {status}")
        status_line.update(self._status_text())

    # -- text -------------------------------------------------------------------------------------------
    def set_waiting(self, text: str) -> None:
        self.waiting = text
        self.query_one(".status", Static).update(self._status_text())

    def _think_title(self) -> str:
        n, secs = self.stats.get("thinking_tokens"), self.stats.get("thinking_s")
        if n:
            return f"Thought for {n} tokens · {secs or 0:.1f} s"
        return "Thinking"

    def _status_text(self, live: bool = False) -> str:
        if self.role != "assistant":
            return ""
        if self.stats.get("error"):
            return f"error: {self.stats['error']}"
        parts = []
        if self.stats.get("tokens"):
            parts.append(stats_line(self.stats))
        if self.stats.get("drafter"):
            parts.append(f"drafter {self.stats['drafter']}")
        if live or self.status == "generating":
            parts.append("generating… (Esc stops)" if parts else
                         f"{self.waiting or 'waiting for the first token…'} (Esc stops)")
        elif self.status == "stopped":
            parts.append("stopped")
        elif self.status in ("length", "generating"):
            parts.append({"length": "cut at the token limit", "generating": "interrupted"}[self.status])
        return " · ".join(parts)

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.content)
        self.app.notify(f"Copied the message ({len(self.content)} characters)", title="Clipboard")

    def action_copy_code(self) -> None:
        code = last_code_block(self.content)
        if code is None:
            self.app.notify("No code block in this message", severity="warning")
            return
        self.app.copy_to_clipboard(code)
        self.app.notify(f"Copied the code block ({len(code.splitlines())} lines)", title="Clipboard")
