"""Blank lines in the chat log: one between messages, none between an answer's last line and its stats
line, none for a user message's (empty) status line; paragraphs, lists and code keep their own spacing."""

from __future__ import annotations

import pytest
from fake_chat import FakeClient, answers, make_app, open_chat, send, sync
from temper.tui.widgets.chat_message import ChatMessage
from textual.widgets import Markdown

ANSWER = ["First paragraph of the answer.\n\nSecond paragraph", " here.\n\n```python\nprint('hi')\n```\n\n",
          "- one\n- two\n- three\n\nLast line."]


def _blank_rows_between(upper, lower) -> int:
    return lower.region.y - upper.region.bottom


@pytest.mark.parametrize("ending", ["Last line.", "```python\nprint('bye')\n```", "- four\n- five"])
def test_one_blank_line_between_messages_and_none_before_the_stats(ending) -> None:
    @sync
    async def check() -> None:
        client = FakeClient()
        app = make_app(client=client)
        async with app.run_test(size=(100, 40)) as pilot:
            view = await open_chat(pilot)
            await send(pilot, "Tell me things.\n\nIn two paragraphs.")
            for part in [*ANSWER[:2], ANSWER[2].replace("Last line.", ending)]:
                client.token(part)
                await pilot.pause()
            client.finish()
            await pilot.pause()
            user = next(m for m in view.query(ChatMessage) if m.role == "user")
            [answer] = answers(view)
            blocks = list(user.query_one(".answer", Markdown).children)
            assert user.region.bottom == blocks[-1].region.bottom      # no empty status line, no margin left
            assert user.region.height == 1 + 3                           # "You", two paragraphs and one blank
            assert _blank_rows_between(user, answer) == 1
            last = list(answer.query_one(".answer", Markdown).children)[-1]
            status = answer.query_one(".status")
            assert _blank_rows_between(last, status) == 0 and "tok/s" in str(status.render())

    check()
