"""The conversation list beside the chat: search box, list (Enter opens), r renames, d deletes."""

from __future__ import annotations

from temper.core.chat.store import Conversation
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Label, ListItem, ListView

from .chat_header import shorten_words

TITLE_CELLS = 30 - 4            # ChatSidebar's width less the ▸ marker and the border beside the list
SIDEBAR_FROM = 100              # the chat view's width from which the list shows by itself (ctrl+b toggles)


class ConversationItem(ListItem):
    """One saved chat; the one open in the chat pane is marked ▸ (visible without focus on the list)."""

    def __init__(self, conv: Conversation, is_open: bool = False) -> None:
        title = shorten_words(conv.title, TITLE_CELLS) or conv.title     # at a word boundary where one fits
        super().__init__(Label(("▸ " if is_open else "  ") + title), classes="-open" if is_open else "")
        self.conv = conv


class ChatSidebar(Vertical):
    DEFAULT_CSS = """
    ChatSidebar { width: 30; max-width: 30%; border-right: vkey $panel; }   /* a share when asked for on a narrow screen */
    ChatSidebar Input { margin: 0; }
    ChatSidebar ListView { height: 1fr; }
    ChatSidebar ConversationItem.-open Label { text-style: bold; color: $accent; }
    ChatSidebar ConversationItem Label { width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    """
    BINDINGS = [
        Binding("r", "rename", "Rename", id="chat.list.rename"),
        Binding("d", "delete", "Delete", id="chat.list.delete"),
    ]

    class Selected(Message):
        def __init__(self, conversation_id: int) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    class Rename(Selected):
        pass

    class Delete(Selected):
        pass

    class Search(Message):
        def __init__(self, query: str) -> None:
            super().__init__()
            self.query = query

    def compose(self) -> ComposeResult:
        yield Input(placeholder="search chats", id="chat-search")
        yield ListView(id="chat-list")

    def show(self, conversations: list[Conversation], current: int | None) -> None:
        listing = self.query_one(ListView)
        listing.clear()
        listing.extend(ConversationItem(c, c.id == current) for c in conversations)
        for i, conv in enumerate(conversations):
            if conv.id == current:
                listing.index = i

    def _highlighted(self) -> int | None:
        item = self.query_one(ListView).highlighted_child
        return item.conv.id if isinstance(item, ConversationItem) else None

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        event.stop()
        if isinstance(event.item, ConversationItem):
            self.post_message(self.Selected(event.item.conv.id))

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "chat-search":
            event.stop()
            self.post_message(self.Search(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "chat-search":
            event.stop()
            self.query_one(ListView).focus()

    def action_rename(self) -> None:
        if (cid := self._highlighted()) is not None:
            self.post_message(self.Rename(cid))

    def action_delete(self) -> None:
        if (cid := self._highlighted()) is not None:
            self.post_message(self.Delete(cid))
