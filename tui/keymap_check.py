"""Keys that a user's [keymap] makes two bindings share, found before anyone presses them.

A remapped binding clashes with another binding that ends up on the same key in a place where both are
live: the same scope (the app, one tab, one dialog), or the app and a tab, where the tab's binding wins
while the tab is shown (Textual checks the focused widget and its parents before the app). Bindings of
two different tabs may share a key. Reported at load (app.py) and in Settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from textual.app import App
from textual.binding import Binding


@dataclass(frozen=True)
class BoundKey:
    id: str
    keys: frozenset[str]
    where: str  # "app", a tab's label, or a dialog's class name


def bound_keys(app: App, keymap: Mapping[str, str]) -> list[BoundKey]:
    """Every binding with an id, on the keys it has once `keymap` is applied."""
    from .screens.help import node_bindings, screen_classes, tab_of

    labels = {tab: label for tab, label, _ in app.tabs}
    out: dict[tuple[str, str], BoundKey] = {}

    def add(binding: Binding, where: str) -> None:
        if not binding.id:
            return
        text = keymap.get(binding.id, binding.key)
        keys = frozenset(k.strip() for k in text.split(",") if k.strip())
        old = out.get((where, binding.id))
        out[(where, binding.id)] = BoundKey(binding.id, keys | (old.keys if old else frozenset()), where)

    for node in [app, *app.screen_stack[0].walk_children(with_self=False)]:
        if any(type(n).__name__ in ("Footer", "Header") for n in node.ancestors_with_self):
            continue
        where = "app" if node is app else tab_of(node, labels)
        for binding in node_bindings(node):
            add(binding, where)
    for screen in screen_classes():
        for binding in screen.BINDINGS:
            if isinstance(binding, Binding):
                add(binding, screen.__name__)
    return list(out.values())


def keymap_clashes(app: App, keymap: Mapping[str, str]) -> list[str]:
    """One line per clash that involves a remapped binding (the defaults are assumed to be designed)."""
    if not keymap:
        return []
    keymap = app._normalize_keymap(dict(keymap))
    entries = bound_keys(app, keymap)
    found, said = [], set()
    for a in entries:
        if a.id not in keymap:
            continue
        for b in entries:
            shared = a.keys & b.keys
            if b.id == a.id or not shared or (a.where != b.where and "app" not in (a.where, b.where)):
                continue
            pair = frozenset((a.id, b.id))
            if pair in said:
                continue
            said.add(pair)
            keys = ", ".join(sorted(shared))
            if a.where == b.where:
                found.append(f"keymap: {a.id} takes {keys} from {b.id}, which loses it")
            else:
                app_side, tab_side = (a, b) if a.where == "app" else (b, a)
                found.append(f"keymap: {a.id} = {keys} clashes with {b.id}: in {tab_side.where}, {keys} does "
                             f"{tab_side.id} and {app_side.id} never fires")
    return found
