"""The help screen: every key binding in the app, with its id (for [keymap] in settings.toml)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.dom import DOMNode
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from ..typed_app import TemperNode

if TYPE_CHECKING:
    from ..app import TemperApp


def binding_rows(app: TemperApp) -> list[tuple[str, str, str, str]]:
    """(keys, description, id, where) for the app's bindings and those of every widget on the main
    screen, with the user's keymap applied: the app's first, then each tab's (in tab order), then the
    dialogs'. Bindings without an id are Textual's own editing keys (cursor moves in a text box...): left out."""
    keymap = app.settings.keymap
    nodes: list[DOMNode] = [app, *app.screen_stack[0].walk_children(with_self=False)]
    rows: list[tuple[str, str, str, str]] = []
    labels = {tab: label for tab, label, _ in app.tabs}
    seen: set[tuple[str, str, str]] = set()
    for node in nodes:
        if any(type(n).__name__ in ("Footer", "Header") for n in node.ancestors_with_self):
            continue
        where = "app" if node is app else tab_of(node, labels)
        grouped: dict[tuple[str, str, str], list[Binding]] = {}
        for binding in node_bindings(node):
            if not binding.id:
                continue
            key = (binding.id or "", binding.action, binding.tooltip or binding.description)
            grouped.setdefault(key, []).append(binding)
        for (bid, _action, description), bindings in grouped.items():
            marker = (where, bid, description)
            if marker in seen:
                continue
            seen.add(marker)
            if bid and bid in keymap:
                keys = keymap[bid].split(",")
                shown = " ".join(app.get_key_display(Binding(k.strip(), "")) for k in keys)
            else:
                shown = " ".join(app.get_key_display(b) for b in bindings)
            rows.append((shown, description or bid, bid, where))
    order = {"app": -1, **{label: i for i, label in enumerate(labels.values())}}
    rows.sort(key=lambda r: order.get(r[3], len(order)))       # stable: the order within a tab is kept
    for screen in screen_classes():
        for binding in screen.BINDINGS:
            if isinstance(binding, Binding) and binding.id:
                keys = keymap[binding.id].split(",") if binding.id in keymap else binding.key.split(",")
                shown = " ".join(app.get_key_display(Binding(k.strip(), "")) for k in keys)
                rows.append((shown, binding.tooltip or binding.description, binding.id,
                             screen.__name__.removesuffix("Screen")))
    return rows


def tab_of(node: DOMNode, labels: dict[str, str]) -> str:
    """The label of the tab a widget lives in ("app" outside any tab)."""
    from textual.widgets import TabPane

    pane = next((a for a in node.ancestors_with_self if isinstance(a, TabPane)), None)
    return "app" if pane is None else labels.get(str(pane.id), str(pane.id))


def screen_classes() -> list[type]:
    from .profiles import ProfileScreen, SaveProfileScreen
    from .settings import SettingsScreen

    return [HelpScreen, SettingsScreen, ProfileScreen, SaveProfileScreen]


def node_bindings(node: DOMNode) -> list[Binding]:
    out: list[Binding] = []
    for bindings in node._bindings.key_to_bindings.values():
        out.extend(bindings)
    return out


class HelpScreen(TemperNode, ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 100%; max-width: 100; height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    HelpScreen #help-intro { color: $text-muted; height: auto; }
    HelpScreen DataTable { height: 1fr; }
    """
    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss", "Close", id="help.close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                "Keys: remap any binding by id in settings.toml, e.g. \\[keymap] \"app.quit\" = \"ctrl+x\". "
                "Esc closes.",
                id="help-intro",
            )
            yield DataTable(id="help-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("keys", "does", "id", "where")
        for row in binding_rows(self.app):
            table.add_row(*row)
        table.focus()
