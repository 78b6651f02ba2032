"""The CLI's tables and errors look the same everywhere: Rich on a terminal (FORCE_COLOR stands in for one
here), plain aligned text with no ANSI codes when piped; --json stays pure JSON either way.

Before: each command wrote its tables by hand (five column-padding loops in core/ and cli/), so nothing was
drawn as a table on a terminal and the sensitivity table cut its columns at fixed widths."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from temper.cli.main import main
from temper.cli.output import print_error, print_markdown, print_table
from temper.core.paths import models_dir

ESC = "\x1b["


@pytest.fixture
def library(tmp_path: Path, tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-empty"))
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    shutil.copytree(tiny_llama, models_dir() / "mine")
    broken = models_dir() / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "model.safetensors").write_bytes(b"")


def test_piped_tables_and_errors_are_plain(library, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["library", "list"]) == 0
    out, err = capsys.readouterr()
    assert ESC not in out and ESC not in err and "─" not in out
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "ARCH", "PARAMS", "SIZE", "QUANT", "BPW", "VISION", "SOURCE"]
    assert all(line == line.rstrip() for line in lines)
    assert [line.split()[0] for line in lines[1:]] == ["broken", "mine"]
    assert err.startswith("temper: broken: ") and len(err.splitlines()) == 1
    assert main(["library", "show", "nope"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "temper: nope: no such model in the Library (see: temper library list)\n"


def test_terminal_tables_and_errors_are_rich(library, capsys, monkeypatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert main(["library", "list"]) == 0
    out, err = capsys.readouterr()
    assert ESC in out and "─" in out                    # a styled header over a rule
    assert "NAME" in out and "mine" in out and "32.00" in out
    assert f"{ESC}1;31mtemper:" in err and "broken" in err
    assert main(["library", "show", "mine"]) == 0
    assert "bits per weight" in capsys.readouterr().out


def test_json_stays_clean_on_a_terminal(library, capsys, monkeypatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert main(["library", "list", "--json"]) == 0
    out = capsys.readouterr().out
    assert ESC not in out
    assert sorted(row["name"] for row in json.loads(out)) == ["broken", "mine"]
    assert main(["library", "show", "mine", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "mine"


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=terminal, width=60, color_system="standard" if terminal else None), buf


def test_long_cells_are_never_cut_and_markup_is_not_read() -> None:
    """A tensor path longer than the terminal is shown whole (piped: no width limit; on a terminal it folds
onto the next line); `[b]` in a cell or header is text, not Rich markup."""
    path = "model.layers.10.self_attn.q_proj." + "x" * 60
    for terminal in (False, True):
        console, buf = _console(terminal)
        print_table(["tensor", "params", "[b]4-bit"], [[path, "1,024", "~1.2e-03"]], right={1, 2}, console=console)
        text = buf.getvalue()
        assert "[b]4-bit" in text and (ESC in text) == terminal and "…" not in text
        assert path in text if not terminal else "".join(text.split()).count("x") >= 60


def test_a_wide_table_on_a_narrow_terminal_comes_in_column_bands() -> None:
    """`temper sensitivity`'s 20 columns at 80 wide: bands that fit, each repeating the tensor and params
    columns, every cell whole on one line (it folded every cell to a character or two). Piped, one table; a
    table that fits, one band."""
    import re

    header = ["tensor", "params", *(f"{b}b g{g}" for b in (2, 3, 4, 5, 6, 8) for g in (128, 64, 32))]
    rows = [[f"model.layers.{i}.self_attn.v_proj", "110592", *(f"~{(i + 1) * (k + 1):.2e}" for k in range(18))]
            for i in range(3)]
    buf = io.StringIO()
    print_table(header, rows, right=range(1, 20), keep=2,
                console=Console(file=buf, force_terminal=True, width=80, color_system=None))
    text = buf.getvalue()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert len(re.findall(r"columns \d+-\d+ of 20", text)) > 1
    for row in rows:
        assert text.count(row[0]) == len(re.findall("columns", text))        # the name leads every band
        assert all(re.search(rf"(^|\s){re.escape(cell)}(\s|$)", text, re.M) for cell in row[2:])   # whole cells
    console, buf = _console(False)
    print_table(header, rows, right=range(1, 20), keep=2, console=console)
    assert len(buf.getvalue().splitlines()) == 1 + len(rows) and "columns" not in buf.getvalue()
    buf = io.StringIO()
    print_table(header[:5], [r[:5] for r in rows], right=range(1, 5), keep=2,
                console=Console(file=buf, force_terminal=True, width=80, color_system=None))
    assert "columns" not in buf.getvalue()
    buf = io.StringIO()          # a little too wide (`temper library list` at 80): Rich narrows it, no bands
    print_table(header[:7], [r[:7] for r in rows], right=range(1, 7), keep=2,
                console=Console(file=buf, force_terminal=True, width=80, color_system=None))
    assert "columns" not in buf.getvalue()


def test_markdown_reports_are_markdown_when_piped_and_tables_on_a_terminal() -> None:
    report = "# bench\n\n| test | tg tok/s |\n|---|---:|\n| pp16+tg4 | 41.3 |\n"
    console, buf = _console(False)
    print_markdown(report, console=console)
    assert buf.getvalue() == report
    console, buf = _console(True)
    print_markdown(report, console=console)
    assert "41.3" in buf.getvalue() and "|---" not in buf.getvalue()


def test_errors_are_one_line_either_way() -> None:
    for terminal in (False, True):
        console, buf = _console(terminal)
        print_error("model.safetensors: [broken] header " + "y" * 80, console=console)
        assert len(buf.getvalue().splitlines()) == 1 and "[broken]" in buf.getvalue()


def _hand_padding(path: Path) -> list[int]:
    """Lines that pad text into columns by hand: `.ljust(` / `.rjust(`, or an f-string width like `{x:>5}`."""
    import ast
    import re

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in ("ljust", "rjust"):
            found.append(node.lineno)
        elif isinstance(node, ast.FormattedValue) and isinstance(node.format_spec, ast.JoinedStr):
            spec = "".join(v.value for v in node.format_spec.values if isinstance(v, ast.Constant))
            if re.match(r"^.?[<>^]?\d+s?$", spec) and not re.match(r"^\d*\.\d", spec):
                found.append(node.lineno)
    return found


def test_no_command_pads_its_columns_by_hand() -> None:
    """Every CLI table goes through cli/output.print_table (core/library/format.table is its plain form).
    Before: `temper profiles list|diff` and `temper kv-calibrate` padded columns themselves (and kv-calibrate
    drew its own `\\r` progress line), so they were the only tables not drawn by Rich on a terminal."""
    root = Path(__file__).resolve().parents[2]
    files = [*(root / "cli").rglob("*.py"), *(root / "core").rglob("*.py")]
    found = {f"{p.relative_to(root)}": lines for p in files
             if (lines := _hand_padding(p)) and p != root / "core" / "library" / "format.py"}
    assert found == {}, f"print these with cli/output.print_table: {found}"


def test_durations_read_at_a_glance():
    from temper.core.library.format import human_duration

    assert [human_duration(s) for s in (0.0, 0.4, 0.6, 12.2, 185, 3720)] == ["<1s", "<1s", "1s", "12s", "3m05s", "1h02m"]
    assert human_duration(None) == "–" and human_duration(-1, missing="") == ""
