"""How the command line writes what it found: tables through Rich, errors as one line, alike everywhere.

On a terminal a table is a Rich table (bold header, numbers right-aligned, a rule under the header; a table
wider than the terminal comes in bands of columns that fit, each led by the row's name; a cell wider than the
terminal folds onto the next line, it is never cut) and an error starts with a red `temper:`. Piped or redirected, the same table is plain text (columns aligned with
two spaces, no ANSI codes, no box characters, nothing wrapped or cut) and an error is the bare line
`temper: what is wrong`, so `temper library list | grep`, scripts and logs read them. `--json` output is
printed as JSON and never passes through here. Rich honours NO_COLOR and FORCE_COLOR.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Sequence

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..core.library.format import table as plain_table

BANDS_OVER = 1.5       # a table needing more than this many terminal widths comes in column bands


def stdout_console() -> Console:
    return Console(file=sys.stdout, highlight=False)


def stderr_console() -> Console:
    return Console(file=sys.stderr, highlight=False)


def print_table(header: Sequence[str] | None, rows: Sequence[Sequence[object]], *,
                right: Collection[int] = frozenset(), console: Console | None = None, keep: int = 1) -> None:
    """One table on stdout: Rich on a terminal, aligned plain text otherwise. On a terminal too narrow for all
    its columns, the table is printed in column bands that fit, each repeating the first `keep` columns (the
    row's name), rather than folding every cell down to a character or two (sensitivity's 20 columns at 80)."""
    console = console or stdout_console()
    cells = [[str(c) for c in row] for row in rows]
    if not console.is_terminal:
        text = plain_table(list(header) if header else None, cells, right=set(right))
        if text:
            console.file.write(text + "\n")
            console.file.flush()
        return
    width = len(header) if header else max((len(r) for r in cells), default=0)
    bands = column_bands([header, *cells] if header else cells, width, keep, console.width, 3 if header else 2)
    for n, band in enumerate(bands):
        if len(bands) > 1:
            shown = f"{band[keep] + 1}-{band[-1] + 1}" if band[-1] > band[keep] else f"{band[-1] + 1}"
            console.print(f"{'' if n == 0 else chr(10)}columns {shown} of {width}", style="dim", markup=False,
                          highlight=False)
        table = Table(box=box.SIMPLE_HEAD if header else None, show_header=header is not None,
                      header_style="bold", pad_edge=False, show_edge=False)
        for i in band:
            table.add_column(escape(header[i]) if header else "", justify="right" if i in right else "left",
                             overflow="fold")      # a cell wider than the terminal folds, never loses characters
        for row in cells:
            table.add_row(*(escape(row[i]) if i < len(row) else "" for i in band))
        console.print(table, soft_wrap=True)


def column_bands(rows: Sequence[Sequence[str]], width: int, keep: int, room: int, gap: int = 2) -> list[list[int]]:
    """Column indices in bands that each fit `room` terminal cells (`gap` between columns: padding, and the
    header box's divider), every band led by the first `keep` columns; one band, all columns, where the table
    needs at most BANDS_OVER × `room` (Rich's own narrowing, words wrapped in their cells, reads better for a
    table a little too wide: `temper library list` at 80) or nothing would be gained."""
    from rich.cells import cell_len

    need = [max((cell_len(r[i]) for r in rows if i < len(r)), default=0) for i in range(width)]
    keep = min(keep, width)
    if sum(need) + gap * (width - 1) <= BANDS_OVER * room or width <= keep + 1:
        return [list(range(width))]
    lead = sum(need[:keep]) + gap * keep
    bands: list[list[int]] = []
    current, used = list(range(keep)), lead
    for i in range(keep, width):
        if len(current) > keep and used + need[i] > room:
            bands.append(current)
            current, used = list(range(keep)), lead
        current.append(i)
        used += need[i] + gap
    bands.append(current)
    return bands


def print_capability(models: Sequence[object], console: Console | None = None) -> None:
    """The capability table of `temper eval --tasks` and `temper quantize --eval-tasks`."""
    from ..core.evals.report import rows

    lines = rows(models)  # type: ignore[arg-type]
    print_table(lines[0], lines[1:], right=range(1, len(lines[0])), console=console)


def print_markdown(text: str, console: Console | None = None) -> None:
    """A Markdown report (bench results and comparisons): rendered by Rich on a terminal (its tables as
    tables), the Markdown itself when piped (pasteable into docs, as llama-bench prints it)."""
    console = console or stdout_console()
    if not console.is_terminal:
        console.file.write(text if text.endswith("\n") else text + "\n")
        console.file.flush()
        return
    from rich.markdown import Markdown

    console.print(Markdown(text))


def print_error(message: str, console: Console | None = None) -> None:
    """`temper: message` on stderr, one line (red prefix on a terminal)."""
    console = console or stderr_console()
    if console.is_terminal:
        console.print(f"[bold red]temper:[/] {escape(message)}", soft_wrap=True, highlight=False)
    else:
        console.file.write(f"temper: {message}\n")
        console.file.flush()
