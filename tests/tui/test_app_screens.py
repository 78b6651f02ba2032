"""Settings and profile screens, driven by keys."""

from __future__ import annotations

import pytest
from shell_app import new_app
from temper.core import settings as store
from temper.core.profiles import load, user_dir
from temper.tui.screens.profiles import ProfileScreen, SaveProfileScreen
from temper.tui.screens.settings import SettingsScreen
from textual.widgets import Input

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

SIZE = (80, 24)


async def test_settings_screen_saves_valid_values(engine, tmp_path, monkeypatch) -> None:
    (tmp_path / "models" / "a").mkdir(parents=True)
    (tmp_path / "models" / "b").mkdir()
    monkeypatch.chdir(tmp_path)
    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("comma")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)
        await pilot.press(*"models/a", "enter", *"models/b")  # focus starts in the folders box (real folders)
        app.screen.query_one("#refresh_rate", Input).value = "10"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, SettingsScreen)
    settings, error = store.load()
    assert error is None
    assert settings.models_folders == ["models/a", "models/b"] and settings.refresh_rate == 10.0


async def test_settings_screen_rejects_a_bad_value_and_stays_open(engine) -> None:
    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("comma")
        await pilot.pause()
        app.screen.query_one("#refresh_rate", Input).value = "500"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)
        assert any("refresh_rate: must be at most 60" in n.message for n in app._notifications)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, SettingsScreen)
    assert not store.settings_path().exists()


async def test_profile_picker_applies_and_saves(engine) -> None:
    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, ProfileScreen)
        names = [o.id for o in app.screen.query_one("#profile-list").options]
        await pilot.press(*["down"] * names.index("precise"))
        await pilot.pause()
        diff_text = str(app.screen.query_one("#profile-diff").render())
        assert "sampling\n  temperature 0.7 → 0.2" in diff_text and "(dimmed: not set, the default)" in diff_text
        await pilot.press("enter")
        await pilot.pause()
        assert app.profile.name == "precise" and "profile precise" in app.sub_title
        await pilot.press("ctrl+o", "s")
        await pilot.pause()
        assert isinstance(app.screen, SaveProfileScreen)
        await pilot.press(*"my-precise", "enter")
        await pilot.pause()
        # back on the picker, which lists the new profile at once (before: only after reopening it)
        assert isinstance(app.screen, ProfileScreen)
        option_list = app.screen.query_one("#profile-list")
        assert "my-precise" in [o.id for o in option_list.options]
        assert option_list.get_option_at_index(option_list.highlighted).id == "my-precise"
        assert "active: my-precise" in str(app.screen.query_one("#profile-help").render())
        await pilot.press("escape", "comma")
        await pilot.pause()
        assert "my-precise" in [v for _, v in app.screen.query_one("#default_profile")._options]
    saved = user_dir() / "my-precise.toml"
    assert saved.read_text() == load("precise").text()  # comments and all
    assert app.profile.name == "my-precise"


async def test_broken_user_profile_is_reported_not_applied(engine) -> None:
    user_dir().mkdir(parents=True)
    (user_dir() / "aaa-broken.toml").write_text("[chat]\nreasoning_effort = 'max'\n")
    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert "does not load" in str(app.screen.query_one("#profile-diff").render())
        await pilot.press("enter")
        await pilot.pause()
        assert app.profile.source == "default"
        assert any("aaa-broken.toml:2: chat.reasoning_effort" in n.message for n in app._notifications)


async def test_profile_screen_compares_two_profiles(engine) -> None:
    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        names = [o.id for o in app.screen.query_one("#profile-list").options]
        await pilot.press(*["down"] * names.index("creative"), "d")
        await pilot.press(*["down"] * (names.index("precise") - names.index("creative")))
        await pilot.pause()
        text = str(app.screen.query_one("#profile-diff").render())
        assert "changes against creative:" in text
        assert "sampling\n  temperature 1.0 → 0.2" in text


async def test_settings_screen_fits_80x24(engine) -> None:
    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("comma")
        await pilot.pause()
        for widget_id in ("#models_folders", "#refresh_rate", "#save", "#cancel"):
            region = app.screen.query_one(widget_id).region
            assert region.height > 0 and region.bottom <= 24 and region.right <= 80, (widget_id, region)


async def test_settings_screen_refuses_a_models_folder_that_does_not_exist(engine, tmp_path) -> None:
    from textual.widgets import TextArea

    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("comma")
        await pilot.pause()
        app.screen.query_one("#models_folders", TextArea).text = str(tmp_path / "nope")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)
        assert any("is not a folder" in n.message for n in app._notifications)
    assert not store.settings_path().exists()


async def test_profile_details_wrap_between_words_at_80x24(engine) -> None:
    """Before: the profile's path and "sampling.temperature: (default: 0.7) → 0.0" lines were folded in the
    middle of words in the 41-column pane."""
    app = new_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        names = [o.id for o in app.screen.query_one("#profile-list").options]
        for n, name in enumerate(names):
            if n:
                await pilot.press("down")
                await pilot.pause()
            pane = app.screen.query_one("#profile-diff")
            words = set(str(pane.render()).split())
            shown = [pane.render_line(y).text for y in range(pane.size.height)]
            broken = [w for line in shown for w in line.split() if w not in words]
            assert not broken, (name, broken, shown)
