"""Profile picker: every shipped and user profile, what it changes against the active one, apply with
Enter, save the active profile under a new name with `s`."""

from __future__ import annotations

from temper.core.errors import ProfileError
from temper.core.library.format import home_short
from temper.core.profiles import diff, list_profiles, load_file, save
from temper.core.profiles.diff import UNSET, show
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option, OptionDoesNotExist

from ..typed_app import TemperNode


class ProfileScreen(TemperNode, ModalScreen[str | None]):
    DEFAULT_CSS = """
    ProfileScreen { align: center middle; }
    ProfileScreen > Vertical {
        width: 96%; max-width: 110; height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    ProfileScreen Horizontal { height: 1fr; }
    ProfileScreen OptionList { width: 30; height: 1fr; }
    ProfileScreen #profile-diff-box { width: 1fr; height: 1fr; }
    ProfileScreen #profile-diff { width: 1fr; height: auto; padding: 0 1; }
    ProfileScreen #profile-help { color: $text-muted; height: auto; }
    """
    BINDINGS = [
        Binding("escape", "dismiss_none", "Close", id="profiles.close"),
        Binding("s", "save_as", "Save active as...", id="profiles.save_as"),
        Binding("d", "compare_base", "Compare against this one", id="profiles.compare"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.base: str | None = None  # compare against this profile instead of the active one

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._help(), id="profile-help")
            with Horizontal():
                yield OptionList(*self._options(), id="profile-list")
                with VerticalScroll(id="profile-diff-box"):  # tab to it to scroll a long diff
                    yield Static(id="profile-diff")

    def _help(self) -> str:
        return (f"[b]Profiles[/b]  active: {self.app.profile.name}.  Enter applies, s saves the active one "
                "under a new name, d compares others against the highlighted one, Esc closes.")

    @staticmethod
    def _options() -> list[Option]:
        return [Option(f"{ref.name}  [dim]{ref.source}[/dim]", id=ref.name) for ref in list_profiles()]

    def refresh_profiles(self, highlight: str | None = None) -> None:
        """Read the profiles again (one was just saved) and highlight `highlight`."""
        option_list = self.query_one(OptionList)
        option_list.clear_options()
        option_list.add_options(self._options())
        self.query_one("#profile-help", Static).update(self._help())
        if highlight is not None:
            try:
                option_list.highlighted = option_list.get_option_index(highlight)
            except OptionDoesNotExist:  # saved somewhere list_profiles does not read
                pass

    def on_mount(self) -> None:
        option_list = self.query_one(OptionList)
        option_list.focus()
        if option_list.option_count:
            option_list.highlighted = 0

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.query_one("#profile-diff", Static).update(self.describe(event.option.id or ""))

    def describe(self, name: str) -> str:
        ref = next((r for r in list_profiles() if r.name == name), None)
        if ref is None:
            return ""
        try:
            profile = load_file(ref.path, ref.name, ref.source)
        except ProfileError as exc:
            return f"[b red]does not load[/]\n{_escape(str(exc))}"
        lines = [f"[b]{ref.name}[/b] ({ref.source}) {_escape(profile.description)}"]
        if ref.source != "shipped":                # where to edit it; a shipped one lives in the package
            lines.append(f"[dim]{_escape(home_short(ref.path))}[/dim]")
        lines.append("")
        base, label = self.app.profile, f"the active profile ({self.app.profile.name})"
        if self.base is not None:
            base_ref = next((r for r in list_profiles() if r.name == self.base), None)
            try:
                base, label = load_file(base_ref.path, base_ref.name, base_ref.source), self.base
            except (AttributeError, ProfileError):
                self.base = None
        changes = diff(base, profile)
        lines.append(f"changes against {_escape(label)}:")
        if not changes:
            lines.append("  none: the same in effect")
        section = ""
        for c in changes:                          # short lines, grouped: they wrap between words at 80 columns
            where, key = c.key.split(".", 1)
            if where != section:
                section = where
                lines.append(f"[b]{where}[/b]")
            lines.append(f"  {key} {_value(c.a, c.default)} [b]→[/b] {_value(c.b, c.default)}")
        if any(UNSET in (c.a, c.b) for c in changes):
            lines += ["", "[dim](dimmed: not set, the default)[/dim]"]
        return "\n".join(lines)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        name = event.option.id or ""
        if self.app.apply_profile(name):
            self.dismiss(name)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    def action_compare_base(self) -> None:
        option_list = self.query_one(OptionList)
        if option_list.highlighted is None:
            return
        self.base = option_list.get_option_at_index(option_list.highlighted).id
        self.notify(f"comparing against {self.base}; move to another profile", timeout=3)

    def action_save_as(self) -> None:
        def saved(name: str | None) -> None:
            if name:
                self.refresh_profiles(name)

        self.app.push_screen(SaveProfileScreen(), saved)


def _value(value, default) -> str:
    """A value set in the profile as it is; a default dimmed."""
    if value is UNSET:
        return f"[dim]{_escape(show(default, None))}[/dim]" if default is not None else "[dim]unset[/dim]"
    return _escape(show(value, default))


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


class SaveProfileScreen(TemperNode, ModalScreen[str | None]):
    """Ask for a name and save the active profile (its comments and order kept) in the user folder."""

    DEFAULT_CSS = """
    SaveProfileScreen { align: center middle; }
    SaveProfileScreen > Vertical {
        width: 60; max-width: 100%; height: auto; border: round $primary; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [Binding("escape", "dismiss_none", "Cancel", id="save_profile.cancel")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Save the active profile ({self.app.profile.name}) as:")
            yield Input(placeholder="name (letters, digits, . _ -)", id="profile-name")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        profile = self.app.profile.copy(name)
        try:
            path = save(profile, name, overwrite=False)
        except ProfileError as exc:
            self.notify(str(exc), title="Not saved", severity="error")
            return
        self.app.profile = profile
        self.notify(f"saved {path}", timeout=4)
        self.dismiss(name)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
