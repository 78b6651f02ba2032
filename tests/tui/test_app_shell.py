"""The shell by keyboard alone at 80x24: tabs, help, palette, keymap, header, OpenModel routing."""

from __future__ import annotations

from pathlib import Path

import pytest
from shell_app import new_app
from temper.core import settings as store
from temper.tui import messages
from temper.tui.app import TABS
from temper.tui.screens.help import HelpScreen
from textual.command import CommandList, CommandPalette
from textual.widgets import Footer, Header, Input, Tab, TabbedContent, TextArea

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

SIZE = (80, 24)


async def palette_pick(pilot, query: str, expected: str) -> None:
    """Type into the open palette, wait (up to 10 s) until the top hit is `expected`, and run it."""
    await pilot.press(*query)
    for _ in range(500):
        await pilot.pause(0.02)
        results = pilot.app.screen.query(CommandList)
        if results and results.first().option_count:
            top = results.first().get_option_at_index(0).prompt
            if expected in str(top):
                break
    else:
        raise AssertionError(f"palette never offered {expected!r}")
    await pilot.press("enter")
    await pilot.pause()
TAB_IDS = [tab for tab, _, _ in TABS]


async def test_header_footer_and_every_tab_fit_in_80x24(engine) -> None:
    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.sub_title == "tester@box"
        assert app.query_one(Header).region.y == 0
        assert app.query_one(Footer).region.bottom == 24
        for tab in app.query(Tab):
            assert tab.region.right <= 80 and tab.region.width > 0, tab
        assert [t.label_text for t in app.query(Tab)] == [label for _, label, _ in TABS]


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_every_tabs_footer_shows_its_keys_quit_and_help_uncut(engine, size) -> None:
    """Before: "^g Co…" in Chat at 100 columns, Library and Layers cut at 80 (a footer cannot wrap)."""
    from textual.widgets._footer import FooterKey

    app = new_app(engine)
    async with app.run_test(size=size) as pilot:
        for number, tab in enumerate(TAB_IDS, start=1):
            await pilot.press(f"f{number}")
            await pilot.pause()
            app.screen.set_focus(None) if tab == "performance" else None
            await pilot.pause()
            keys = [k for k in app.query(FooterKey) if "-command-palette" not in k.classes]
            palette = next(k for k in app.query(FooterKey) if "-command-palette" in k.classes)
            assert keys and all(k.region.width and k.region.right <= palette.region.x for k in keys), (
                tab, palette.region.x, [(k.description, k.region.x, k.region.right) for k in keys])
            assert {"Quit", "Help"} <= {k.description for k in keys}, tab


async def test_function_keys_and_alt_numbers_open_every_tab(engine) -> None:
    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        for number, tab in enumerate(TAB_IDS, start=1):
            await pilot.press(f"f{number}")
            await pilot.pause()
            assert app.active_tab == tab
        for number, tab in reversed(list(enumerate(TAB_IDS, start=1))):
            await pilot.press(f"alt+{number}")
            await pilot.pause()
            assert app.active_tab == tab
            assert app.focused is not None  # the keyboard lands somewhere in the tab or on the tab strip


async def test_brackets_step_through_tabs_and_wrap(engine) -> None:
    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        seen = []
        for _ in TAB_IDS:
            if isinstance(app.focused, (Input, TextArea)):
                # A focused text field (the chat prompt) takes "]" as text; F-keys and alt+N still switch.
                await pilot.press("right_square_bracket")
                await pilot.pause()
                assert app.active_tab == seen[-1]
                app.screen.set_focus(None)
            await pilot.press("right_square_bracket")
            await pilot.pause()
            seen.append(app.active_tab)
        assert seen == TAB_IDS[1:] + TAB_IDS[:1]
        await pilot.press("left_square_bracket")
        await pilot.pause()
        assert app.active_tab == TAB_IDS[-1]


async def test_help_screen_lists_every_app_binding_with_its_id(engine) -> None:
    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one("#help-table")
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        ids = {row[2] for row in rows}
        expected = {b.id for b in app.BINDINGS}
        assert expected <= ids, expected - ids
        assert ["f4 alt+4", "Chat", "app.tab.chat", "app"] in [list(r) for r in rows]
        assert {"settings.save", "profiles.save_as", "help.close"} <= ids  # the screens' keys too
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_command_palette_opens_and_switches_tabs(engine) -> None:
    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await palette_pick(pilot, "go to chat", "Go to Chat")
        assert not isinstance(app.screen, CommandPalette)
        assert app.active_tab == "chat"


async def test_palette_theme_command_switches_and_persists(engine) -> None:
    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await palette_pick(pilot, "theme: temper-light", "Theme: temper-light")
        assert app.theme == "temper-light"
    settings, error = store.load()
    assert error is None and settings.theme == "temper-light"


async def test_user_keymap_remaps_a_binding_and_help_shows_it(engine) -> None:
    path = store.settings_path()
    path.parent.mkdir(parents=True)
    path.write_text('[keymap]\n"app.tab.chat" = "ctrl+g"\n"app.nope" = "ctrl+n"\n')
    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert any("no binding with id app.nope" in n.message for n in app._notifications)
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert app.active_tab == "chat"
        await pilot.press("f1", "f4")  # f4 was replaced by the remap
        await pilot.pause()
        assert app.active_tab == "library"
        await pilot.press("question_mark")
        await pilot.pause()
        table = app.screen.query_one("#help-table")
        rows = [list(table.get_row_at(i)) for i in range(table.row_count)]
        assert ["^g", "Chat", "app.tab.chat", "app"] in rows


async def test_open_model_sets_the_active_model_and_switches_tab(engine, tmp_path: Path) -> None:
    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        app.post_message(messages.OpenModel(tmp_path / "Qwen3-0.6B-4bit", "quantize"))
        await pilot.pause()
        assert app.model == str(tmp_path / "Qwen3-0.6B-4bit")
        assert app.active_tab == "quantize"
        assert app.sub_title == "tester@box · Qwen3-0.6B-4bit"

        app.query_one("#library-view").post_message(messages.OpenModel("/m/gemma-4-e2b", "chat"))  # bubbles up
        await pilot.pause()
        assert app.model == "/m/gemma-4-e2b" and app.active_tab == "chat"


async def test_animations_follow_ssh_and_settings(engine) -> None:
    assert new_app(engine).animation_level == "none"
    assert new_app(engine, environ={}).animation_level == "full"


async def test_broken_settings_and_profile_still_start(engine) -> None:
    path = store.settings_path()
    path.parent.mkdir(parents=True)
    path.write_text("theme = 3\n")
    app = new_app(engine, profile="does-not-exist")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any("settings.toml:1: theme: expected a string" in m for m in messages), messages
        assert any("no profile named 'does-not-exist'" in m for m in messages), messages
        assert app.profile.source == "default" and app.theme == "temper-dark"
        app.theme = "temper-light"  # not saved over the broken file
        await pilot.pause()
    assert path.read_text() == "theme = 3\n"


async def test_profile_from_args_shows_in_header(engine) -> None:
    app = new_app(engine, profile="precise")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.profile.name == "precise"
        assert app.sub_title == "tester@box · profile precise"
        assert app.query_one(TabbedContent).active == "library"


async def test_bad_user_theme_is_reported_and_the_app_falls_back(engine) -> None:
    from temper.core import themes

    themes.user_dir().mkdir(parents=True)
    (themes.user_dir() / "bad-var.toml").write_text(
        'name = "bad-var"\n[colors]\nprimary = "#123456"\n[variables]\nborder = "not-a-colour"\n'
    )
    (themes.user_dir() / "bad-file.toml").write_text('name = "bad-file"\n[colors]\nprimary = "blue-ish"\n')
    path = store.settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('theme = "bad-var"\n')
    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any("variables.border: 'not-a-colour' is not a colour" in m for m in messages), messages
        assert any("bad-file.toml:3: colors.primary: 'blue-ish' is not a colour" in m for m in messages)
        assert any("unknown theme 'bad-var': using temper-dark" in m for m in messages)
        assert app.theme == "temper-dark" and "bad-var" not in app.available_themes


def test_cli_profile_and_model_reach_the_app(monkeypatch, tiny_llama) -> None:
    """`temper --profile NAME --model PATH` opens the app with both set (the model is checked at launch now,
    so it must be a real one)."""
    from temper.cli.main import main
    from temper.tui.app import TemperApp

    seen = {}
    monkeypatch.setattr(TemperApp, "run", lambda self: seen.update(profile=self.profile, model=self.model))
    assert main(["--profile", "creative", "--model", str(tiny_llama)]) == 0
    assert seen["profile"].name == "creative" and seen["profile"].get("sampling", "temperature") == 1.0
    assert seen["model"] == str(tiny_llama)


async def test_keymap_clash_is_reported(engine) -> None:
    path = store.settings_path()
    path.parent.mkdir(parents=True)
    path.write_text('[keymap]\n"app.help" = "comma"\n')  # comma opens settings by default
    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("comma")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        messages = [n.message for n in app._notifications]
        assert "keymap: app.help takes comma from app.settings, which loses it" in messages, messages


async def test_a_remap_onto_a_tabs_key_is_flagged_at_load_and_in_settings(engine) -> None:
    """Before: only clashes within the app's own bindings were seen; ctrl+g for the Chat tab silently lost to
    the Chat tab's copy-code key (the tab's binding wins while it is shown)."""
    path = store.settings_path()
    path.parent.mkdir(parents=True)
    path.write_text('[keymap]\n"app.tab.chat" = "ctrl+g"\n"library.chat" = "ctrl+y"\n')
    app = new_app(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        want = "keymap: app.tab.chat = ctrl+g clashes with chat.copy_code: in Chat, ctrl+g does chat.copy_code"
        messages = [n.message for n in app._notifications]
        assert any(m.startswith(want) for m in messages), messages
        assert not any("library.chat" in m for m in messages)   # ctrl+y is Chat's, another tab: no clash
        await pilot.press("comma")
        await pilot.pause()
        shown = str(app.screen.query_one("#settings-keymap").render())
        assert want in shown and app.screen.query_one("#settings-keymap").display


async def test_help_lists_our_keys_grouped_by_tab_app_first(engine) -> None:
    """Before: ~150 rows, Textual's own text-editing keys among them, grouped by widget class."""
    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f10")
        await pilot.pause()
        table = app.screen.query_one("#help-table")
        rows = [list(table.get_row_at(i)) for i in range(table.row_count)]
        assert all(r[2] != "-" for r in rows) and len(rows) < 90
        wheres = [r[3] for r in rows]
        assert wheres[0] == "app" and not {"Input", "TextArea", "DataTable", "ListView"} & set(wheres)
        tabs = [w for i, w in enumerate(wheres) if w != "app" and (i == 0 or wheres[i - 1] != w)]
        assert len(tabs) == len(set(tabs))                    # each tab's keys together
