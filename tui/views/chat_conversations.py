"""The Chat tab's conversation commands: new, open, search, rename, delete, export, settings and copy.

`ChatConversations` is a part of `ChatView` (tui/views/chat.py), which holds the state it acts on (the
store, the open conversation, the running answer) and the sending and streaming of answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from temper.core.chat.export import export
from temper.core.chat.settings import ChatSettings
from temper.core.chat.store import ChatStore, Conversation
from temper.core.engine.reasoning import has_thinking_mode
from temper.core.errors import TemperError
from temper.core.paths import data_dir
from textual.containers import VerticalScroll
from textual.widgets import Input

from ..typed_app import TemperNode
from ..widgets.chat_message import ChatMessage, last_code_block
from ..widgets.chat_settings import AskText, ChatSettingsScreen
from ..widgets.chat_sidebar import ChatSidebar

if TYPE_CHECKING:
    from .chat import Generation


class ChatConversations(TemperNode):
    """A base of ChatView (before the Textual base class): the commands on saved conversations."""

    store: ChatStore | None
    conv: Conversation | None
    gen: Generation | None
    settings: ChatSettings
    system_prompt: str
    log_view: VerticalScroll         # and show_conversation(), refresh_list(), update_header(): ChatView's

    # -- conversations ----------------------------------------------------------------------------------
    def _busy(self) -> bool:
        if self.gen is not None:
            self.notify("Stop the answer first (Esc)", severity="warning")
            return True
        return False

    def action_new_chat(self) -> None:
        if not self._busy():
            self.show_conversation(None)
            self.refresh_list()
            self.query_one("#chat-input", Input).focus()

    def on_chat_sidebar_selected(self, message: ChatSidebar.Selected) -> None:
        if type(message) is ChatSidebar.Selected and not self._busy():
            self.show_conversation(message.conversation_id)
            self.refresh_list()                      # the ▸ mark moves to the chat now open

    def on_chat_sidebar_search(self, message: ChatSidebar.Search) -> None:
        self.refresh_list(message.query or None)

    def on_chat_sidebar_rename(self, message: ChatSidebar.Rename) -> None:
        self._rename(message.conversation_id)

    def on_chat_sidebar_delete(self, message: ChatSidebar.Delete) -> None:
        if self.gen is not None and self.conv and self.conv.id == message.conversation_id:
            self._busy()
            return
        from ..screens.delete_model import ConfirmDelete

        title = self.store.get(message.conversation_id).title
        count = len(self.store.messages(message.conversation_id))

        def done(yes: bool | None) -> None:
            if yes:
                self.store.delete(message.conversation_id)
                if self.conv and self.conv.id == message.conversation_id:
                    self.show_conversation(None)
                self.refresh_list()
                self.notify(f"Deleted “{title}”")

        # the same confirmation as the Library's delete: y deletes, n or Esc keeps
        self.app.push_screen(ConfirmDelete(f"“{title}”", f"{count} message(s)", "a saved conversation"), done)

    def action_rename(self) -> None:
        if self.conv is not None:
            self._rename(self.conv.id)

    def _rename(self, conv_id: int) -> None:
        def done(title: str | None) -> None:
            if title is None:
                return
            try:
                self.store.rename(conv_id, title)
            except TemperError as exc:
                self.notify(str(exc), severity="error")
                return
            if self.conv and self.conv.id == conv_id:
                self.conv = self.store.get(conv_id)
                self.update_header()
            self.refresh_list()

        self.app.push_screen(AskText("Rename the conversation", self.store.get(conv_id).title), done)

    def action_export(self) -> None:
        if self.conv is None:
            self.notify("Nothing to export yet", severity="warning")
            return
        default = data_dir() / "exports" / f"chat-{self.conv.id}.md"

        def done(path: str | None) -> None:
            if path:
                out = export(self.store, self.conv.id, Path(path).expanduser())
                self.notify(f"Exported to {out}", title="Export")

        self.app.push_screen(AskText("Export to Markdown file", str(default)), done)

    def action_search(self) -> None:
        sidebar = self.query_one(ChatSidebar)
        sidebar.display = True
        self.query_one("#chat-search", Input).focus()

    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one(ChatSidebar)
        sidebar.display = not sidebar.display

    def action_settings(self) -> None:
        def done(result) -> None:
            if result is None:
                return
            self.system_prompt, self.settings = result
            if self.conv is not None:
                self.store.update(self.conv.id, system_prompt=self.system_prompt, settings=self.settings.to_dict())
            self.update_header()
            self.notify(f"Settings saved for this chat; new chats start from profile {self.app.profile.name}")

        no_thinking = ""
        if self.model and Path(self.model).is_dir() and not has_thinking_mode(self.model):
            no_thinking = Path(self.model).name
        self.app.push_screen(ChatSettingsScreen(self.system_prompt, self.settings, no_thinking=no_thinking), done)

    # -- clipboard ---------------------------------------------------------------------------------------
    def _last_answer(self) -> ChatMessage | None:
        answers = [m for m in self.log_view.query(ChatMessage) if m.role == "assistant" and m.content]
        return answers[-1] if answers else None

    def action_copy_answer(self) -> None:
        if (msg := self._last_answer()) is None:
            self.notify("No answer to copy yet", severity="warning")
            return
        msg.action_copy()

    def action_copy_code(self) -> None:
        for msg in reversed(list(self.log_view.query(ChatMessage))):
            if last_code_block(msg.content) is not None:
                msg.action_copy_code()
                return
        self.notify("No code block in this chat", severity="warning")
