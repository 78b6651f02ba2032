"""Chat tab, saved conversations: switching, search, regenerate, settings, rename, export, delete."""

from __future__ import annotations

import pytest
from fake_chat import FakeClient, answers, make_app, open_chat, send, sync
from temper.core.chat.store import ChatStore
from temper.tui.widgets.chat_message import ChatMessage
from textual.widgets import Input, ListView


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
async def test_narrow_terminal_hides_the_sidebar_and_ctrl_b_toggles_it():
    async with make_app().run_test(size=(80, 24)) as pilot:
        view = await open_chat(pilot)
        sidebar = view.query_one("#chat-sidebar")
        assert not sidebar.display
        await pilot.press("ctrl+b")
        assert sidebar.display


async def _sidebar_and_transcript(pilot, view, size):
    """Resize, let the layout settle; (sidebar shown, its width, the transcript's width)."""
    await pilot.resize_terminal(*size)
    await pilot.pause()
    await pilot.pause()
    sidebar, main = view.query_one("#chat-sidebar"), view.query_one("#chat-main")
    return sidebar.display, sidebar.outer_size.width if sidebar.display else 0, main.outer_size.width


@sync
async def test_the_sidebar_follows_the_terminal_width_across_resizes():
    """Before: only the width at start counted: 100x30 -> 80x24 kept the 30-column list beside a 50-column
    transcript, and a narrow start never showed it again at 100 columns."""
    async with make_app().run_test(size=(100, 30)) as pilot:
        view = await open_chat(pilot)
        assert await _sidebar_and_transcript(pilot, view, (100, 30)) == (True, 30, 70)
        assert await _sidebar_and_transcript(pilot, view, (80, 24)) == (False, 0, 80)
        assert await _sidebar_and_transcript(pilot, view, (100, 30)) == (True, 30, 70)
        await pilot.resize_terminal(80, 24)
        await pilot.press("ctrl+b")                     # asked for on a narrow terminal: a share, not 30 columns
        shown, width, transcript = await _sidebar_and_transcript(pilot, view, (80, 24))
        assert shown and 0 < width <= 80 * 0.3 and transcript == 80 - width
        assert await _sidebar_and_transcript(pilot, view, (80, 30)) == (True, width, transcript)   # kept
        await pilot.press("ctrl+b")
        assert await _sidebar_and_transcript(pilot, view, (90, 30)) == (False, 0, 90)
    async with make_app().run_test(size=(80, 24)) as pilot:
        view = await open_chat(pilot)
        assert await _sidebar_and_transcript(pilot, view, (80, 24)) == (False, 0, 80)
        await pilot.press("f1")                         # resized while another tab shows
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        view = await open_chat(pilot)
        assert await _sidebar_and_transcript(pilot, view, (120, 40)) == (True, 30, 90)


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
