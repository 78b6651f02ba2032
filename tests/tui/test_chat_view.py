"""Chat tab driven by Pilot with a fake chat client: answers streaming, stopping, thinking, copying.

The commands on saved conversations are tested in test_chat_conversations.py."""

from __future__ import annotations

from fake_chat import FakeClient, answers, make_app, open_chat, send, sync
from temper.core.chat.store import ChatStore
from temper.core.engine.generate import ThinkingDone
from temper.tui.app import TemperApp
from temper.tui.views.chat import NO_MODEL
from temper.tui.widgets.chat_message import ChatMessage
from textual.widgets import Collapsible, Input


@sync
async def test_tokens_stream_into_the_answer_and_are_saved():
    client = FakeClient()
    app = make_app(client=client)
    async with app.run_test(size=(120, 40)) as pilot:
        view = await open_chat(pilot)
        await send(pilot, "Say hello")
        assert client.job.request.messages[-1] == {"role": "user", "content": "Say hello"}
        assert client.job.request.model == "models/tiny"
        for part in ["Hel", "lo ", "**world**"]:
            client.token(part)
        client.stats(decode_tps=40.0, ttft_s=0.1, elapsed_s=0.3)
        await pilot.pause()
        [answer] = answers(view)
        assert answer.content == "Hello **world**"
        assert "generating" in str(answer.query_one(".status").render())
        saved = ChatStore().messages(view.conv.id)[-1]
        assert saved.status == "generating"  # the row exists while the answer grows
        client.finish()
        await pilot.pause()
        status = str(answer.query_one(".status").render())
        assert "42.0 tok/s" in status and "TTFT 50 ms" in status
        saved = ChatStore().messages(view.conv.id)[-1]
        assert (saved.content, saved.status) == ("Hello **world**", "ok")
        assert saved.stats["decode_tps"] == 42.0
        assert "context 13/2048" in str(view.query_one("#chat-header").render())


@sync
async def test_esc_stops_and_keeps_the_partial_answer_marked_stopped():
    client = FakeClient()
    async with make_app(client=client).run_test(size=(120, 40)) as pilot:
        view = await open_chat(pilot)
        await send(pilot, "Count to ten")
        client.token("one two")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert client.job.cancelled
        [answer] = answers(view)
        assert answer.content == "one two" and answer.status == "stopped"
        assert "stopped" in str(answer.query_one(".status").render())
        saved = ChatStore().messages(view.conv.id)
        assert [(m.role, m.status) for m in saved] == [("user", "ok"), ("assistant", "stopped")]
        assert view.query_one("#chat-input", Input).value == ""


@sync
async def test_esc_before_the_first_token_gives_the_prompt_back():
    client = FakeClient()
    async with make_app(client=client).run_test(size=(120, 40)) as pilot:
        view = await open_chat(pilot)
        await send(pilot, "Long question")
        await pilot.press("escape")
        await pilot.pause()
        assert view.query_one("#chat-input", Input).value == "Long question"
        assert list(view.query(ChatMessage)) == []
        assert ChatStore().messages(view.conv.id) == []


@sync
async def test_thinking_streams_open_then_collapses_with_its_count_and_time():
    client = FakeClient()
    async with make_app(client=client).run_test(size=(120, 40)) as pilot:
        view = await open_chat(pilot)
        await send(pilot, "Think first")
        client.token("Let me ", thinking=True)
        client.token("see.", thinking=True)
        await pilot.pause()
        [answer] = answers(view)
        block = answer.query_one(Collapsible)
        assert block.display and not block.collapsed and block.title == "Thinking…"
        client.job.on_event(ThinkingDone(1, 2, 1.25))
        client.token("Answer.")
        await pilot.pause()
        assert block.collapsed and block.title == "Thought for 2 tokens · 1.2 s"
        assert answer.thinking == "Let me see." and answer.content == "Answer."
        client.finish()
        await pilot.pause()
        saved = ChatStore().messages(view.conv.id)[-1]
        assert (saved.thinking, saved.content) == ("Let me see.", "Answer.")


@sync
async def test_copy_the_answer_and_the_last_code_block_through_osc52():
    client = FakeClient()
    async with make_app(client=client).run_test(size=(120, 40)) as pilot:
        await open_chat(pilot)
        await send(pilot, "Code please")
        client.token("Here:\n```python\nprint('hi')\n```\nand\n```sh\nls -l\n```\n")
        client.finish()
        await pilot.pause()
        await pilot.press("ctrl+y")
        await pilot.pause()
        assert pilot.app.clipboard.startswith("Here:\n```python")
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert pilot.app.clipboard == "ls -l"
        notes = [n.message for n in pilot.app._notifications]
        assert any("Copied the message" in n for n in notes) and any("Copied the code block" in n for n in notes)


@sync
async def test_follows_the_bottom_only_when_already_there():
    client = FakeClient()
    async with make_app(client=client).run_test(size=(100, 24)) as pilot:
        view = await open_chat(pilot)
        await send(pilot, "Long answer")
        for i in range(40):
            client.token(f"line {i}\n\n")
        await pilot.pause(0.3)
        log = view.log_view
        assert log.max_scroll_y > 0 and log.scroll_y == log.max_scroll_y
        log.scroll_to(y=0, animate=False)
        log.release_anchor()
        await pilot.pause()
        for i in range(40, 60):
            client.token(f"line {i}\n\n")
        await pilot.pause(0.3)
        assert log.scroll_y == 0   # the reader stays where they scrolled to


@sync
async def test_without_a_model_the_tab_says_how_to_pick_one():
    client = FakeClient()
    async with make_app(model=None, client=client).run_test(size=(120, 40)) as pilot:
        view = await open_chat(pilot)
        assert NO_MODEL in str(view.query_one("#chat-hint").render())
        await send(pilot, "hello")
        assert any(NO_MODEL in n.message for n in pilot.app._notifications)
        assert ChatStore().list() == [] and client.jobs == []
        pilot.app.model = "models/picked"   # e.g. opened from the Library
        await pilot.press("f1")
        await open_chat(pilot)
        assert not view.query("#chat-hint")
        assert "picked" in str(view.query_one("#chat-header").render())
        await send(pilot, "hello")
        assert client.job.request.model == "models/picked"


@sync
async def test_the_real_engine_answers_in_the_tab(engine, tiny_llama):
    """End to end with the real client and engine on the tiny model: tokens arrive, the answer is saved."""
    app = TemperApp(engine=engine)
    app.model = str(tiny_llama)
    async with app.run_test(size=(120, 40)) as pilot:
        view = await open_chat(pilot)
        view.settings.sampling.max_tokens = 12
        view.settings.effort = "low"
        view.settings.budgets["low"] = 3
        await send(pilot, "Hello")
        for _ in range(200):
            await pilot.pause(0.05)
            if view.gen is None:
                break
        [answer] = answers(view)
        saved = ChatStore().messages(view.conv.id)[-1]
        assert saved.status in ("ok", "length") and saved.content == answer.content
        assert saved.stats["tokens"] > 0 and saved.stats["thinking_tokens"] == 3
        assert answer.query_one(Collapsible).collapsed
        assert "tok/s" in str(answer.query_one(".status").render())


@sync
async def test_single_newlines_in_an_answer_stay_line_breaks():
    from textual.widgets._markdown import MarkdownParagraph

    client = FakeClient()
    async with make_app(client=client).run_test(size=(120, 40)) as pilot:
        view = await open_chat(pilot)
        await send(pilot, "A poem")
        for part in ["Roses are red,\nViolets", " are blue,\nSugar is sweet,\n", "And so are you."]:
            client.token(part)
        client.finish()
        await pilot.pause(0.2)
        [answer] = answers(view)
        [para] = answer.query(MarkdownParagraph)
        text = str(para.render()).strip()
        assert text.splitlines() == ["Roses are red,", "Violets are blue,", "Sugar is sweet,", "And so are you."]


@sync
async def test_a_message_queued_behind_a_quantize_job_says_so():
    import threading

    from temper.core.engine.events import Started

    client = FakeClient()
    app = make_app(client=client)
    release = threading.Event()
    async with app.run_test(size=(120, 40)) as pilot:
        view = await open_chat(pilot)
        app.engine.submit(lambda ctx: release.wait(10), kind="quantize")
        for _ in range(100):
            if app.engine.current is not None:
                break
            await pilot.pause(0.02)
        await send(pilot, "hello")
        [answer] = answers(view)
        status = str(answer.query_one(".status").render())
        assert "queued behind the running quantize job" in status, status
        release.set()
        client.job.on_event(Started(1, "chat"))
        await pilot.pause()
        assert "loading the model" in str(answer.query_one(".status").render())
        client.token("Hi")
        client.finish()
        await pilot.pause()
        assert "queued" not in str(answer.query_one(".status").render())


@sync
async def test_drafter_building_shows_and_a_note_is_said_once_per_chat():
    """The self-drafter's build is shown while the answer waits; "effort ignored" (any note) shows on the
    first answer of a chat only, live and saved (not appended to every answer's line)."""
    from temper.core.engine.events import Progress

    client = FakeClient()
    note = "SmolLM2 has no thinking mode: effort high ignored"
    async with make_app(client=client).run_test(size=(120, 40)) as pilot:
        view = await open_chat(pilot)
        await send(pilot, "hello")
        client.job.on_event(Progress(1, "drafter", 12, 31, "building the self-drafter (a 3-bit copy…): 38%…"))
        await pilot.pause()
        [answer] = answers(view)
        assert "building the self-drafter" in str(answer.query_one(".status").render())
        client.token("Hi")
        client.finish(notes=[note])
        await pilot.pause()
        await send(pilot, "again")
        client.stats(notes=[note])
        await pilot.pause()
        assert note not in str(answers(view)[1].query_one(".status").render())
        client.token("Yes")
        client.finish(notes=[note])
        await pilot.pause()
        first, second = (str(a.query_one(".status").render()) for a in answers(view))
        assert note in first and note not in second
        saved = [m.stats.get("notes") for m in ChatStore().messages(view.conv.id) if m.role == "assistant"]
        assert saved == [[note], []]
