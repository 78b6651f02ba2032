"""CLI progress: bars with ETA and the current item on a terminal, plain lines when piped, nothing with
--quiet or --json; usage and input errors in one line with exit 2."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console
from temper.cli.main import main
from temper.cli.progress import ProgressView, follow
from temper.core.engine.events import Progress

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def cli_engine(engine, monkeypatch):
    import temper.core.engine.thread as thread

    monkeypatch.setattr(thread, "_default", engine)
    return engine


def terminal() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=120, color_system="standard"), buf


def test_a_terminal_gets_a_bar_with_eta_and_the_current_item(monkeypatch) -> None:
    import temper.cli.progress as progress

    clock = iter(range(0, 10_000, 2))
    monkeypatch.setattr(progress.time, "monotonic", lambda: float(next(clock)))
    console, buf = terminal()
    with ProgressView(console=console) as show:
        for done in range(0, 11):
            show("sensitivity", done, 10, f"exact model.layers.{done}.mlp.down_proj")
        for done in range(3):      # an ETA once a step after the first one is done (core/engine/eta.py)
            show("write", done, 4, f"model-0000{done}.safetensors")
    text = ANSI.sub("", buf.getvalue())
    assert "sensitivity" in text and "10/10" in text and "write" in text and "2/4" in text
    assert re.search(r"2/4 +eta \d+s", text) and "model.layers.10.mlp.down_proj" in text
    assert "model-00002.safetensors" in text
    assert "━" in text                                   # the bar itself


def test_piped_output_is_plain_lines_with_eta(monkeypatch) -> None:
    import temper.cli.progress as progress

    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    buf = io.StringIO()
    with ProgressView(console=Console(file=buf, force_terminal=False, width=200)) as show:
        for done in range(0, 5):
            show("sensitivity", done, 4, f"tensor {done}")
            now[0] += 10.0                                 # 10 s per event: every one is due for a line
    lines = buf.getvalue().splitlines()
    assert lines[0] == "[sensitivity] 0/4 tensor 0"
    assert lines[2] == "[sensitivity] 2/4 eta 20s tensor 2"
    assert lines[-1] == "[sensitivity] 4/4 tensor 4"
    assert "\r" not in buf.getvalue() and not ANSI.search(buf.getvalue())


def test_a_real_job_reports_every_phase_on_a_terminal(engine, tiny_llama, tmp_path) -> None:
    from temper.core.quant.pipeline import quantize
    from temper.core.quant.request import QuantRequest

    console, buf = terminal()
    request = QuantRequest(model=str(tiny_llama), recipe="uniform-4", samples=2, seq_len=32,
                           output=str(tmp_path / "q"))
    result = follow(engine.submit(lambda ctx: quantize(ctx, request), kind="quantize"), console=console)
    assert result.verify.ok
    text = ANSI.sub("", buf.getvalue())
    for phase in ("inventory", "write", "verify", "evaluate"):
        assert phase in text, phase


def test_piped_quantize_prints_plain_phase_lines_and_quiet_and_json_stay_clean(cli_engine, tiny_llama, tmp_path,
                                                                                capsys) -> None:
    args = ["quantize", str(tiny_llama), "--recipe", "uniform-4", "--samples", "2", "--seq-len", "32"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "[write]" in err and "[verify]" in err and "[evaluate]" in err
    assert "\r" not in err and not ANSI.search(err)
    assert main([*args, "-o", str(tmp_path / "b"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "wrote" in captured.out
    assert main([*args, "-o", str(tmp_path / "c"), "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and json.loads(captured.out)["verify"]["ok"]


def test_sensitivity_reports_per_tensor_progress_when_piped(cli_engine, tiny_llama, capsys) -> None:
    argv = ["sensitivity", str(tiny_llama), "--mode", "exact", "--bits", "4", "--group-sizes", "64",
            "--samples", "1", "--seq-len", "16"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    counts = re.findall(r"\[sensitivity\] (\d+)/(\d+)", err)
    assert counts and counts[-1][0] == counts[-1][1]          # the last line says it is done
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and json.loads(captured.out)["tensors"]


@pytest.mark.parametrize("argv, message", [
    (["quantize", "m", "--bits", "2,x"], "temper: quantize: argument --bits: expected a number, not 'x'"),
    (["quantize", "m", "--bits", "7"], "temper: --bits: item 1: must be one of 2, 3, 4, 5, 6, 8, got 7"),
    (["sensitivity", "m", "--group-sizes", "16"], "temper: --group-sizes: item 1: must be one of 32, 64, 128"),
    (["quantize", "m", "--nope"], "temper: usage: unrecognized arguments: --nope"),
])
def test_usage_and_setting_errors_are_one_line_with_exit_2(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) if "argument" in message or "unrecognized" in message else _no_raise():
        code = main(argv)
        assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

def test_quantize_eval_shows_evaluation_progress_when_piped(cli_engine, tiny_llama, tmp_path, capsys,
                                                            monkeypatch) -> None:
    """`temper quantize --eval | cat`: the evaluation says it started (before the base model loads), then
    counts its chunks with an ETA, and ends at total/total."""
    import temper.cli.progress as progress

    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)       # a line per event: the counting is visible
    argv = ["quantize", str(tiny_llama), "--recipe", "uniform-4", "--eval", "--samples", "4", "--seq-len", "32",
            "-o", str(tmp_path / "q")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("[evaluate]")]
    counts = [tuple(map(int, m.groups())) for m in (re.match(r"\[evaluate\] (\d+)/(\d+)", line) for line in lines)
              if m]
    assert len(counts) >= 4, err
    (total,) = {t for _, t in counts}
    assert total == 2 * 4                                  # base + one quant, four held-out chunks each
    assert [d for d, _ in counts] == sorted(d for d, _ in counts) and counts[-1] == (total, total)
    assert "loading" in lines[0] and tiny_llama.name in lines[0]   # said before the base model loads
    assert any(" eta " in line for line in lines[1:-1]), lines
    assert any(line.endswith(" loading q") for line in lines), lines   # the quantized folder's turn is named
    assert "\r" not in err and not ANSI.search(err)


def test_the_eta_shown_is_the_cores_when_the_event_has_one(monkeypatch) -> None:
    """The core weighs unlike steps (core/engine/eta.py): the CLI prints its `eta_s`, not a rate of its own."""
    import temper.cli.progress as progress

    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    buf = io.StringIO()
    with ProgressView(console=Console(file=buf, force_terminal=False, width=200)) as show:
        for done, eta in ((1, None), (2, 150.0), (3, 140.0)):
            now[0] += 10.0
            show(*progress.as_progress(Progress(1, "sensitivity", done, 227, "fisher", {"eta_s": eta})))
    lines = buf.getvalue().splitlines()
    assert lines[1] == "[sensitivity] 2/227 eta 2m30s fisher" and lines[2].startswith("[sensitivity] 3/227 eta 2m20s")
    console, out = terminal()
    with ProgressView(console=console) as show:
        show("sensitivity", 2, 227, "fisher", 150.0)
    assert "eta 2m30s" in ANSI.sub("", out.getvalue())


def test_terminal_bars_fill_by_work_units_with_the_count_in_steps() -> None:
    import io

    from rich.console import Console
    from temper.cli import progress
    from temper.core.engine.events import Progress

    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    bars = progress.LiveBars(console)
    seen = progress.as_progress(Progress(1, "sensitivity", 4, 227, "fisher",
                                         {"eta_s": 90.0, "work": 240.0, "work_total": 1171.0}))
    bars.update(*seen)
    task = bars.bars.tasks[bars.tasks["sensitivity"]]
    bars.close()
    assert seen[5] == (240.0, 1171.0)
    assert (task.completed, task.total, task.fields["count"]) == (240.0, 1171.0, "4/227")


def test_a_phase_left_behind_reads_done_in_steps() -> None:
    import io

    from rich.console import Console
    from temper.cli import progress

    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    bars = progress.LiveBars(console)
    bars.update("inventory", 0, 1, "model")
    bars.update("sensitivity", 3, 10, "fisher", 12.0, (30.0, 40.0))
    bars.update("write", 0, 5, "")
    tasks = {name: bars.bars.tasks[i] for name, i in bars.tasks.items()}
    bars.close()
    assert tasks["inventory"].fields["count"] == "done" and tasks["inventory"].percentage == 100
    assert tasks["sensitivity"].fields["count"] == "10/10" and tasks["sensitivity"].fields["eta"] == ""
    assert tasks["sensitivity"].percentage == 100


def test_one_step_phases_show_no_count() -> None:
    """A phase of one step (the model load, the save) reads "done", never "0/1" or "1/1", in bars and lines."""
    import io

    from rich.console import Console
    from temper.cli import progress

    out = io.StringIO()
    lines = progress.PlainLines(Console(file=out, width=120))
    lines.update("write", 0, 1, "")
    lines.update("write", 1, 1, "")
    lines.update("verify", 211, 211, "ok")
    text = out.getvalue()
    assert "0/1" not in text and "1/1" not in text, text
    assert "[write] done" in text and "[verify] 211/211 ok" in text
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    bars = progress.LiveBars(console)
    bars.update("write", 0, 1, "")
    first = bars.bars.tasks[bars.tasks["write"]].fields["count"]
    bars.update("write", 1, 1, "")
    tasks = {name: bars.bars.tasks[i] for name, i in bars.tasks.items()}
    bars.close()
    assert first == "" and tasks["write"].fields["count"] == "done" and tasks["write"].percentage == 100


def test_estimates_filed_after_the_fisher_pass_show_no_count_of_their_own() -> None:
    """The tensors given their estimates after the Fisher pass (a count of tensors, not of the pass's steps) are
    not shown: the plain lines ended "227/227" then "211/211"; the exact KL's per-tensor progress still is."""
    from temper.cli import progress
    from temper.core.engine.eta import as_progress as core_progress
    from temper.core.quant.sensitivity_run import LayerScored

    estimate = core_progress(LayerScored(1, "model.layers.0.mlp.up_proj", {}, 211, 211, "estimate"))
    exact = core_progress(LayerScored(1, "model.layers.0.mlp.up_proj", {}, 3, 50, "exact"))
    assert estimate is None                     # no progress made of it, for the CLI and the app alike
    assert progress.as_progress(exact)[:4] == ("sensitivity", 3, 50, "exact model.layers.0.mlp.up_proj")
