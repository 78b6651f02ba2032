"""The Chat tab: saved conversations, answers streamed as Markdown, Esc stops, thinking collapses.

The view never touches MLX: it builds a `ChatRequest` and hands it to a client (`app.chat_client`:
an `EngineChatClient` on the app's engine, or a test's fake); its events come back as `ChatView.Event`
messages.
Every answer is saved while it grows (`AnswerWriter`), so a crash loses at most half a second of it.
The commands on saved conversations (new, search, rename, delete, export, settings, copy) are in
tui/views/chat_conversations.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temper.core.chat.export import new_notes
from temper.core.chat.session import make_request
from temper.core.chat.settings import ChatSettings
from temper.core.chat.store import AnswerWriter, ChatStore, Conversation, title_from
from temper.core.engine.events import Cancelled, Failed, Finished, Progress, Started
from temper.core.engine.generate import StatsEvent, ThinkingDone, TokenEvent
from temper.core.engine.reasoning import has_thinking_mode
from temper.core.errors import TemperError
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Static

from ..widgets.chat_header import ChatHeader, Part
from ..widgets.chat_message import ChatMessage
from ..widgets.chat_sidebar import SIDEBAR_FROM, ChatSidebar
from .chat_conversations import ChatConversations

NO_MODEL = "No model selected: open one from the Library (or run temper --model PATH)."
_gen_ids = itertools.count(1)


@dataclass
class Generation:
    id: int
    handle: Any
    widget: ChatMessage
    writer: AnswerWriter
    prompt: str | None          # the text sent (None for regenerate)
    user_widget: ChatMessage | None
    user_message_id: int | None
    got_tokens: bool = False
    stopping: bool = False
    earlier: list = field(default_factory=list)  # the conversation's messages before it (notes said once)


class ChatView(ChatConversations, Vertical):
    DEFAULT_CSS = """
    ChatView { height: 1fr; }
    ChatView #chat-body { height: 1fr; }
    ChatView #chat-main { width: 1fr; }
    ChatView #chat-header { height: 1; padding: 0 1; color: $text-muted; background: $panel; }
    ChatView #chat-log { height: 1fr; }
    ChatView #chat-hint { padding: 1 2; color: $text-muted; }
    ChatView #chat-input { dock: bottom; }
    """
    BINDINGS = [
        Binding("escape", "stop", "Stop", id="chat.stop", show=False),  # the message box says "Esc stops"
        Binding("ctrl+n", "new_chat", "New", tooltip="New chat", id="chat.new"),
        Binding("ctrl+b", "toggle_sidebar", "Chats", id="chat.sidebar"),
        Binding("ctrl+r", "regenerate", "Regen", tooltip="Regenerate", id="chat.regenerate"),
        Binding("f6", "settings", "Options", tooltip="Chat settings", id="chat.settings"),
        Binding("ctrl+y", "copy_answer", "Copy", tooltip="Copy answer", id="chat.copy"),
        Binding("ctrl+g", "copy_code", "Code", tooltip="Copy code", id="chat.copy_code"),
        Binding("f7", "rename", "Rename", id="chat.rename", show=False),
        Binding("ctrl+s", "export", "Export", id="chat.export", show=False),
        Binding("ctrl+f", "search", "Search", id="chat.search", show=False),
    ]

    class Event(Message):
        """An engine event of one generation, delivered on the UI thread."""

        def __init__(self, generation: int, event: Any) -> None:
            super().__init__()
            self.generation = generation
            self.event = event

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.store: ChatStore | None = None
        self.client = None
        self.conv: Conversation | None = None
        self.settings = ChatSettings()
        self.system_prompt = ""
        self.gen: Generation | None = None
        self.last_stats: dict = {}
        self._thinking: dict[str, bool] = {}
        self._wide_layout: bool | None = None       # the sidebar's automatic state last applied

    def compose(self) -> ComposeResult:
        with Horizontal(id="chat-body"):
            yield ChatSidebar(id="chat-sidebar")
            with Vertical(id="chat-main"):
                yield ChatHeader(id="chat-header")
                yield VerticalScroll(id="chat-log")
                yield Input(placeholder="Message (Enter sends · Esc stops · F6 settings)", id="chat-input")

    def on_mount(self) -> None:
        self.store = self.app.chat_store
        self.client = self.app.chat_client
        if self.store.recovered:
            self.notify(f"{self.store.recovered} answer(s) cut short last time were kept, marked stopped")
        self._fit_sidebar(self.app.size.width)
        self.refresh_list()
        self.show_conversation(None)
        self.watch(self.app, "profile", self._profile_changed, init=False)

    def on_resize(self, event: events.Resize) -> None:
        self._fit_sidebar(event.size.width)

    def _fit_sidebar(self, width: int) -> None:
        """The conversation list shows from SIDEBAR_FROM columns, hides below; applied when the width crosses
        that line (at start, on resize, or when the tab shows again after one), so a ctrl+b toggle holds
        until then."""
        wide = width >= SIDEBAR_FROM
        if wide != self._wide_layout:
            self._wide_layout = wide
            self.query_one(ChatSidebar).display = wide

    def _from_profile(self) -> None:
        """A new chat starts with the active profile's [sampling] and [chat] settings."""
        self.system_prompt, self.settings = ChatSettings.from_profile(self.app.profile)

    def _profile_changed(self, _profile) -> None:
        if self.conv is None and self.gen is None:       # a fresh chat takes the new profile at once
            self._from_profile()
            self.update_header()

    def default_focus(self):
        """The message box: what a user arriving here (a tab key, Open in Chat) types into. Tab keys that work
        while typing: F1-F5 and ctrl+pageup/pagedown."""
        return self.query_one("#chat-input", Input) if self.gen is None else None

    def on_show(self) -> None:
        """The tab came into view: the active model may have changed meanwhile (Library → OpenModel)."""
        if self.model:
            self.query("#chat-hint").remove()
        self.update_header()
        if self.gen is None and not isinstance(self.app.focused, Input):
            self.query_one("#chat-input", Input).focus()

    # -- state ------------------------------------------------------------------------------------------
    @property
    def model(self) -> str | None:
        """The app's active model; else the model an opened conversation was using."""
        model = self.app.model
        if model:
            return model
        return self.conv.model if self.conv is not None and self.conv.model else None

    @property
    def log_view(self) -> VerticalScroll:
        return self.query_one("#chat-log", VerticalScroll)

    def refresh_list(self, query: str | None = None) -> None:
        self.query_one(ChatSidebar).show(self.store.list(query), self.conv.id if self.conv else None)

    def update_header(self) -> None:
        """Model, context, settings and title, fitted to the header's width (widgets/chat_header.py)."""
        parts = [Part(Path(self.model).name if self.model else "no model", keep=0)]
        if self.conv:
            parts.append(Part(self.conv.title, keep=9, title=True))
        used, limit = self.last_stats.get("context_used", 0), self.last_stats.get("context_limit", 0)
        if limit:
            parts.append(Part(f"context {used}/{limit}", keep=0, short=f"ctx {used}/{limit}"))
            if used >= 0.9 * limit:
                parts.append(Part("context nearly full: start a new chat (ctrl+n)", keep=0,
                                  short="nearly full: ctrl+n", style="bold"))
        s = self.settings
        if s.effort or self._thinks():
            parts.append(Part(f"effort {s.effort or 'default'}", keep=3))
        if s.drafter:
            parts.append(Part(f"drafter {s.drafter} ×{s.num_draft_tokens}", keep=2, short=f"draft ×{s.num_draft_tokens}"))
        kv = self.last_stats.get("kv")
        if kv and kv != "float":
            parts.append(Part(f"kv {kv}", keep=1))
        elif s.kv_bits:
            parts.append(Part(f"kv {s.kv_bits}-bit", keep=1))
        self.query_one(ChatHeader).show(parts)

    def _thinks(self) -> bool:
        """Whether the model has a thinking mode (read from its files once per model): else "effort" says nothing."""
        model = self.model
        if not model or not Path(model).is_dir():
            return True
        if model not in self._thinking:
            self._thinking[model] = has_thinking_mode(model)
        return self._thinking[model]

    def show_conversation(self, conv_id: int | None) -> None:
        """Open a saved conversation (None: a fresh, unsaved one)."""
        log = self.log_view
        log.remove_children()
        self.last_stats = {}
        if conv_id is None:
            self.conv = None
            self._from_profile()                  # not the previous chat's settings
            if not self.model:
                log.mount(Static(NO_MODEL, id="chat-hint"))
        else:
            self.conv = self.store.get(conv_id)
            self.settings = ChatSettings.from_dict(self.conv.settings)
            self.system_prompt = self.conv.system_prompt
            widgets = [ChatMessage(m.role, m.content, thinking=m.thinking, status=m.status, stats=m.stats,
                                   message_id=m.id) for m in self.store.messages(conv_id)
                       if m.role != "system"]
            if widgets:
                log.mount_all(widgets)
            last = [m for m in self.store.messages(conv_id) if m.stats.get("context_limit")]
            self.last_stats = last[-1].stats if last else {}
        log.anchor()
        self.update_header()

    # -- sending ----------------------------------------------------------------------------------------
    @on(Input.Submitted, "#chat-input")
    async def send(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        if self.gen is not None:
            self.notify("An answer is still coming: Esc stops it", severity="warning")
            return
        if not self.model:
            self.notify(NO_MODEL, severity="warning")
            return
        if self.conv is None:
            self.conv = self.store.create(title_from(text), model=self.model, system_prompt=self.system_prompt,
                                          settings=self.settings.to_dict())
            await self.log_view.query("#chat-hint").remove()
            self.refresh_list()
        event.input.value = ""
        user = self.store.add(self.conv.id, "user", text)
        user_widget = ChatMessage("user", text, message_id=user.id)
        await self.log_view.mount(user_widget)
        await self.start(prompt=text, user_widget=user_widget, user_message_id=user.id)

    async def start(self, *, prompt: str | None, user_widget: ChatMessage | None,
                    user_message_id: int | None) -> None:
        assert self.conv is not None
        history = self.store.messages(self.conv.id)
        try:
            request = make_request(self.model, self.system_prompt, history, self.settings)
        except TemperError as exc:
            self.notify(str(exc), severity="error")
            return
        if self.conv.model != self.model:
            self.store.update(self.conv.id, model=self.model)
        writer = self.store.start_answer(self.conv.id)
        widget = ChatMessage("assistant", status="generating", message_id=writer.message_id)
        busy = self.app.engine.current        # the engine runs one job at a time: say what this one waits for
        if busy is not None and busy.kind != "chat":
            widget.waiting = f"queued behind the running {busy.kind} job (one job runs at a time)…"
        await self.log_view.mount(widget)
        gen_id = next(_gen_ids)
        self.gen = Generation(gen_id, None, widget, writer, prompt, user_widget, user_message_id,
                              earlier=history)
        self.gen.handle = self.client.start(request, lambda e, g=gen_id: self.post_message(self.Event(g, e)))
        self.update_header()

    def action_stop(self) -> None:
        if self.gen is not None and not self.gen.stopping:
            self.gen.stopping = True
            self.gen.handle.cancel()

    async def action_regenerate(self) -> None:
        if self.gen is not None or self.conv is None:
            return
        msgs = [m for m in self.store.messages(self.conv.id) if m.role != "system"]
        if not msgs:
            return
        if msgs[-1].role == "assistant":
            self.store.pop_last_answer(self.conv.id)
            answers = self.log_view.query(ChatMessage)
            if answers and answers.last().role == "assistant":
                await answers.last().remove()
        await self.start(prompt=None, user_widget=None, user_message_id=None)

    # -- events -----------------------------------------------------------------------------------------
    async def on_chat_view_event(self, message: ChatView.Event) -> None:
        gen = self.gen
        if gen is None or message.generation != gen.id:
            return
        event = message.event
        if isinstance(event, Started):
            gen.widget.set_waiting("loading the model and reading the prompt…")
        elif isinstance(event, Progress):       # building the self-drafter
            gen.widget.set_waiting(event.message)
        if isinstance(event, TokenEvent):
            gen.got_tokens = gen.got_tokens or event.token >= 0 or bool(event.text)
            if event.thinking:
                await gen.widget.write_thinking(event.text)
            else:
                await gen.widget.write(event.text)
            gen.writer.update(gen.widget.content, gen.widget.thinking)
        elif isinstance(event, ThinkingDone):
            gen.widget.thinking_done(event.tokens, event.seconds)
        elif isinstance(event, StatsEvent):
            if not event.final:
                live = event.stats.to_dict()
                gen.widget.live({**live, "notes": new_notes(live["notes"], gen.earlier)})
        elif isinstance(event, Finished):
            await self._finish(gen, event.result)
        elif isinstance(event, (Failed, Cancelled)):
            await self._fail(gen, event)

    async def _finish(self, gen: Generation, result) -> None:
        self.gen = None
        stats = result.stats.to_dict()
        stats["notes"] = new_notes(stats["notes"], gen.earlier)   # each note once per conversation
        self.last_stats = stats
        if result.status == "stopped" and not (result.text or result.thinking):
            await self._undo(gen)
            return
        gen.writer.finish(result.text, result.thinking, result.status, stats)
        await gen.widget.finish(result.status, stats)
        self.update_header()

    async def _fail(self, gen: Generation, event) -> None:
        self.gen = None
        if isinstance(event, Cancelled) and not gen.got_tokens:
            await self._undo(gen)
            return
        message = getattr(event, "message", "cancelled")
        gen.writer.finish(gen.widget.content, gen.widget.thinking, "error", {"error": message})
        await gen.widget.finish("error", error=message)
        self.notify(message, severity="error", title="Chat")

    async def _undo(self, gen: Generation) -> None:
        """Stopped before the first token: drop the empty answer and give the prompt back."""
        self.store.delete_message(gen.writer.message_id)
        await gen.widget.remove()
        if gen.prompt is not None:
            if gen.user_message_id is not None:
                self.store.delete_message(gen.user_message_id)
            if gen.user_widget is not None:
                await gen.user_widget.remove()
            prompt_input = self.query_one("#chat-input", Input)
            prompt_input.value = gen.prompt
            prompt_input.cursor_position = len(gen.prompt)
        self.notify("Stopped before the first token")
