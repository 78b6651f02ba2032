"""The one-line header above a chat: the model, the context figure, the settings in use and the chat's title,
fitted to the width it has. What matters most stays: a part first takes its short form, then goes, the least
needed first; the title gives way at a word boundary ("…"); nothing is cut in the middle of a word."""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import Static

SEP = " · "
MIN_TITLE = 12          # a title shorter than this once shortened says nothing: it goes instead


@dataclass(frozen=True)
class Part:
    text: str
    keep: int                 # 0 always stays; the highest goes first when space runs out
    short: str = ""           # tried before the part goes
    style: str = ""
    title: bool = False       # may be shortened at a word boundary


def shorten_words(text: str, width: int) -> str:
    """`text` cut at the last word boundary that fits `width` with a "…", or "" when not even a word fits."""
    if cell_len(text) <= width:
        return text
    words, out = text.split(), ""
    for word in words:
        longer = f"{out} {word}" if out else word
        if cell_len(longer) + 1 > width:
            break
        out = longer
    return out.rstrip(",;:.-–—") + "…" if out else ""


def shorten_name(name: str, width: int) -> str:
    """A model name cut between its dash-separated pieces, keeping its first and last pieces ("A-…-8")."""
    if cell_len(name) <= width:
        return name
    pieces = name.split("-")
    head, tail = pieces[0], pieces[1:]
    for start in range(1, len(tail) + 1):
        candidate = "-".join([head, "…", *tail[start:]]) if start < len(tail) else f"{head}-…"
        if cell_len(candidate) <= width:
            return candidate
    return head if cell_len(head) <= width else name   # too narrow for anything sensible: left to the terminal


def _width(texts: list[str]) -> int:
    return sum(cell_len(t) for t in texts) + cell_len(SEP) * max(len(texts) - 1, 0)


def fit(parts: list[Part], width: int) -> list[tuple[Part, str]]:
    """The parts to show, in their order, each with the form that is shown, within `width` cells: the others
    first (short forms, then the least needed go), then the title in what room is left."""
    shown: dict[int, str] = {i: p.text for i, p in enumerate(parts) if not p.title}

    def fits() -> bool:
        return _width(list(shown.values())) <= width

    for i in sorted((i for i in shown if parts[i].keep > 0), key=lambda i: -parts[i].keep):
        if fits():
            break
        if parts[i].short:
            shown[i] = parts[i].short
            if fits():
                break
        del shown[i]
    for i in [i for i in shown if parts[i].short]:      # only what must stay is left: its short forms
        if fits():
            break
        shown[i] = parts[i].short
    if not fits() and shown:                              # the model's name gives way between its pieces
        first = min(shown)
        name = shown[first]
        while True:
            room = width - _width([t for j, t in shown.items() if j != first]) - cell_len(SEP) * (len(shown) > 1)
            shown[first] = shorten_name(name, room)
            if fits() or len(shown) == 1:
                break
            del shown[max(shown)]                         # very narrow: the name before everything else
    for i, part in enumerate(parts):
        if part.title:
            room = width - _width(list(shown.values())) - (cell_len(SEP) if shown else 0)
            title = shorten_words(part.text, room)
            if title and (title == part.text or cell_len(title) >= MIN_TITLE):
                shown[i] = title
    return [(parts[i], shown[i]) for i in sorted(shown)]


class ChatHeader(Static):
    """Shows `parts` fitted to its width, again whenever it is resized."""

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.parts: list[Part] = []

    def show(self, parts: list[Part]) -> None:
        self.parts = parts
        self._fit()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        width = self.content_size.width
        chosen = fit(self.parts, width) if width > 0 else [(p, p.text) for p in self.parts]
        text = Text()
        for n, (part, shown) in enumerate(chosen):
            if n:
                text.append(SEP)
            text.append(shown, style=part.style)
        self.update(text)
