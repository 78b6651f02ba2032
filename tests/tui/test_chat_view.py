"""Chat tab driven by Pilot with a fake chat client: no MLX, no model, scripted token streams."""

from __future__ import annotations

import asyncio
import functools

import pytest
from temper.core.chat.store import ChatStore
from temper.core.engine import Engine
from temper.core.engine.events import Finished
from temper.core.engine.generate import ChatResult, GenerationStats, StatsEvent, ThinkingDone, TokenEvent
from temper.tui.app import TemperApp
from temper.tui.views.chat import NO_MODEL, ChatView
from temper.tui.widgets.chat_message import ChatMessage
from textual.widgets import Collapsible, Input, ListView


def sync(test):
    """Run an async Pilot test with asyncio.run (no pytest-asyncio in the dev extras)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return run


class FakeJob:
    def __init__(self, client, request, on_event):
        self.client, self.request, self.on_event = client, request, on_event
        self.cancelled = False
        self.text, self.thinking, self.n = "", "", 0

    def cancel(self):
        self.cancelled = True
        self.client.finish("stopped")


class FakeClient:
    """Records requests; the test pushes tokens and the end of each answer."""

    def __init__(self):
        self.jobs: list[FakeJob] = []

    def start(self, request, on_event):
        self.jobs.append(FakeJob(self, request, on_event))
        return self.jobs[-1]

    @property
    def job(self) -> FakeJob:
        return self.jobs[-1]

    def token(self, text, thinking=False):
        job = self.job
        job.n += 1
        if thinking:
            job.thinking += text
        else:
            job.text += text
        job.on_event(TokenEvent(1, text, job.n, False, thinking))

    def stats(self, **kw):
        self.job.on_event(StatsEvent(1, GenerationStats(tokens=self.job.n, **kw)))

    def finish(self, status="ok", notes=()):
        job = self.job
        stats = GenerationStats(tokens=job.n, ttft_s=0.05, decode_tps=42.0, elapsed_s=1.5, prompt_tokens=10,
                                prefill_tokens=10, context_used=10 + job.n, context_limit=2048,
                                finish={"ok": "stop"}.get(status, status), notes=list(notes))
        job.on_event(Finished(1, ChatResult(job.text, job.thinking, status, stats)))


def make_app(model="models/tiny", client=None):
    app = TemperApp(engine=Engine(name="chat-view-test"))
    app.model = model
    app.chat_client = client or FakeClient()
    return app


async def open_chat(pilot):
    await pilot.press("f4")
    await pilot.pause()
    return pilot.app.query_one(ChatView)


async def send(pilot, text):
    box = pilot.app.query_one("#chat-input", Input)
    box.focus()
    box.value = text
    await pilot.press("enter")
    await pilot.pause()


def answers(view):
    return [m for m in view.query(ChatMessage) if m.role == "assistant"]


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
async def test_switching_conversations_shows_their_messages_and_settings():
    store = ChatStore()
    a = store.create("Alpha chat", model="m", settings={"effort": "low"})
    store.add(a.id, "user", "alpha question")
    store.add(a.id, "assistant", "alpha answer")
    b = store.create("Beta chat", model="m", system_prompt="Be terse.", settings={"effort": "high"})
    store.add(b.id, "user", "beta question")
    client = FakeClient()
    async with make_app(client=client).run_test(size=(120, 40)) as pilot:
        view = await open_chat(pilot)
        listing = view.query_one("#chat-list", ListView)
        assert len(listing.children) == 2
        listing.focus()
        listing.index = 1   # newest first: Alpha is second
        await pilot.press("enter")
        await pilot.pause()
        assert view.conv.id == a.id and view.settings.effort == "low"
        assert [m.content for m in view.query(ChatMessage)] == ["alpha question", "alpha answer"]
        listing.index = 0
        await pilot.press("enter")
        await pilot.pause()
        assert view.conv.id == b.id and view.system_prompt == "Be terse."
        assert [m.content for m in view.query(ChatMessage)] == ["beta question"]
        await send(pilot, "more")
        assert client.job.request.messages[0] == {"role": "system", "content": "Be terse."}
        assert client.job.request.effort == "high"


@sync
async def test_search_filters_the_list_and_regenerate_replaces_the_last_answer():
    store = ChatStore()
    a = store.create("Pasta", model="m")
    store.add(a.id, "user", "boil time?")
    store.add(a.id, "assistant", "ten minutes")
    store.create("Rust", model="m")
    client = FakeClient()
    async with make_app(client=client).run_test(size=(120, 40)) as pilot:
        view = await open_chat(pilot)
        await pilot.press("ctrl+f")
        await pilot.press(*"minutes")
        await pilot.pause()
        listing = view.query_one("#chat-list", ListView)
        assert len(listing.children) == 1
        listing.focus()
        listing.index = 0
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert client.job.request.messages[-1] == {"role": "user", "content": "boil time?"}
        client.token("eight minutes")
        client.finish()
        await pilot.pause()
        assert [m.content for m in answers(view)] == ["eight minutes"]
        assert [m.content for m in ChatStore().messages(a.id)] == ["boil time?", "eight minutes"]


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
async def test_narrow_terminal_hides_the_sidebar_and_ctrl_b_toggles_it():
    async with make_app().run_test(size=(80, 24)) as pilot:
        view = await open_chat(pilot)
        sidebar = view.query_one("#chat-sidebar")
        assert not sidebar.display
        await pilot.press("ctrl+b")
        assert sidebar.display


@pytest.mark.parametrize("size", [(120, 40)])
@sync
async def test_settings_modal_saves_to_the_conversation(size):
    client = FakeClient()
    async with make_app(client=client).run_test(size=size) as pilot:
        view = await open_chat(pilot)
        await send(pilot, "hi")
        client.finish()
        await pilot.pause()
        await pilot.press("f6")
        await pilot.pause()
        screen = pilot.app.screen
        screen.query_one("#set-temperature", Input).value = "0"
        screen.query_one("#set-drafter", Input).value = "self"
        screen.query_one("#set-top_p", Input).value = "abc"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "not a number" in str(screen.query_one("#settings-error").render())
        screen.query_one("#set-top_p", Input).value = "0.9"
        await pilot.press("ctrl+s")
        await pilot.pause()
        saved = ChatStore().get(view.conv.id).settings
        assert saved["drafter"] == "self" and saved["sampling"]["temperature"] == 0.0
        await send(pilot, "again")
        assert client.job.request.drafter == "self" and client.job.request.sampling.top_p == 0.9


@sync
async def test_rename_and_export_through_their_prompts(tmp_path):
    client = FakeClient()
    async with make_app(client=client).run_test(size=(120, 40)) as pilot:
        view = await open_chat(pilot)
        await send(pilot, "first words")
        client.token("an answer")
        client.finish()
        await pilot.pause()
        await pilot.press("f7")
        await pilot.pause()
        pilot.app.screen.query_one("#ask-input", Input).value = "Renamed chat"
        await pilot.press("enter")
        await pilot.pause()
        assert ChatStore().get(view.conv.id).title == "Renamed chat"
        assert "Renamed chat" in str(view.query_one("#chat-header").render())
        await pilot.press("ctrl+s")
        await pilot.pause()
        out = tmp_path / "exported.md"
        pilot.app.screen.query_one("#ask-input", Input).value = str(out)
        await pilot.press("enter")
        await pilot.pause()
        assert out.read_text().startswith("# Renamed chat") and "an answer" in out.read_text()


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
async def test_delete_from_the_list_asks_first():
    store = ChatStore()
    keep = store.create("Keep me", model="m")
    gone = store.create("Delete me", model="m")
    store.add(gone.id, "user", "bye")
    async with make_app().run_test(size=(120, 40)) as pilot:
        view = await open_chat(pilot)
        listing = view.query_one("#chat-list", ListView)
        listing.focus()
        listing.index = 0          # newest first: "Delete me"
        await pilot.press("enter")
        await pilot.pause()
        assert view.conv.id == gone.id
        await pilot.press("d")
        await pilot.pause()
        from temper.tui.screens.delete_model import ConfirmDelete

        assert isinstance(pilot.app.screen, ConfirmDelete)     # the Library's confirmation, y / n
        assert "“Delete me” (1 message(s))" in str(pilot.app.screen.query_one("#confirm-text").render())
        await pilot.press("n")            # n keeps it
        await pilot.pause()
        assert len(ChatStore().list()) == 2
        listing.focus()
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert [c.id for c in ChatStore().list()] == [keep.id]
        assert view.conv is None and list(view.query(ChatMessage)) == []


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
async def test_a_new_chat_takes_the_active_profiles_settings_not_the_last_chats():
    from temper.core.profiles import load

    client = FakeClient()
    app = make_app(client=client)
    app.profile = load("precise")
    async with app.run_test(size=(120, 40)) as pilot:
        view = await open_chat(pilot)
        await send(pilot, "first")
        request = client.job.request
        assert request.sampling.temperature == 0.2 and request.sampling.seed == 0 and request.effort == "medium"
        assert request.messages[0] == {"role": "system", "content": load("precise").section("chat")["system_prompt"]}
        client.finish()
        await pilot.pause()
        view.settings.sampling.temperature = 1.5           # changed for this chat only (F6)
        view.system_prompt = "Be silly."
        await pilot.press("ctrl+n")
        await pilot.pause()
        await send(pilot, "second")
        request = client.job.request
        assert request.sampling.temperature == 0.2 and request.messages[0]["content"].startswith("You are a precise")
        client.finish()
        await pilot.pause()
        pilot.app.profile = load("creative")               # applied later: the next new chat follows it
        await pilot.press("ctrl+n")
        await pilot.pause()
        await send(pilot, "third")
        assert client.job.request.sampling.temperature == 1.0 and client.job.request.effort == "low"


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
async def test_the_open_chat_is_marked_in_the_list():
    from temper.tui.widgets.chat_sidebar import ConversationItem

    client = FakeClient()
    async with make_app(client=client).run_test(size=(120, 40)) as pilot:
        view = await open_chat(pilot)
        await send(pilot, "first chat")
        client.finish()
        await pilot.pause()
        await pilot.press("ctrl+n")
        await send(pilot, "second chat")
        client.finish()
        await pilot.pause()
        marked = [str(i.query_one("Label").render()) for i in view.query(ConversationItem) if i.has_class("-open")]
        assert marked == ["▸ second chat"]


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


@sync
async def test_effort_is_disabled_for_a_model_without_a_thinking_mode(tmp_path):
    from textual.widgets import Select

    plain = tmp_path / "plain-model"
    plain.mkdir()
    (plain / "tokenizer_config.json").write_text('{"added_tokens_decoder": {"0": {"content": "<|im_start|>"}}}')
    thinking = tmp_path / "thinking-model"
    thinking.mkdir()
    (thinking / "tokenizer_config.json").write_text('{"added_tokens_decoder": {"9": {"content": "<think>"}}}')
    for folder, disabled in ((plain, True), (thinking, False)):
        async with make_app(model=str(folder)).run_test(size=(120, 40)) as pilot:
            await open_chat(pilot)
            await pilot.press("f6")
            await pilot.pause()
            screen = pilot.app.screen
            assert screen.query_one("#set-effort", Select).disabled is disabled
            assert screen.query_one("#set-budget-high", Input).disabled is disabled
