"""Results: JSON / Markdown / CSV round trips, compare, the CLI."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
from temper.cli.main import main
from temper.core.bench.metrics import RunTiming
from temper.core.bench.results import BatchRow, BenchResult, Row, compare_markdown
from temper.core.bench.roofline import Roofline
from temper.core.errors import TemperError


def _result(scale: float = 1.0) -> BenchResult:
    runs = [RunTiming(512, 128, 0.0, 0.05 * scale, 1.0 * scale, peak_memory=17_000_000_000, rss=2_000_000_000,
                      kv_bytes=64_000_000),
            RunTiming(512, 128, 5.0, 5.0 + 0.06 * scale, 5.0 + 1.1 * scale, peak_memory=17_100_000_000,
                      rss=2_000_000_000, kv_bytes=64_000_000)]
    roof = Roofline(15_000_000_000, 48_000_000, 3350.0, 2400.0, runs[0].decode_tps, "NVIDIA H100 SXM", "x")
    batch = [BatchRow(1, 512, 128, [0.05], 128, 1.0, 127.0, 640.0, 17_000_000_000, 1.0),
             BatchRow(2, 512, 128, [0.08, 0.09], 256, 1.2, 210.0, 1066.0, 18_000_000_000, 210 / 127)]
    return BenchResult(model={"name": "m", "weight_bytes": 16e9, "params": 8e9, "bpw": 16.0},
                       machine={"chip": "NVIDIA H100 80GB HBM3", "mlx": "0.32.4", "device": "Device(gpu, 0)",
                                "memory_bytes": 2**37, "os": "Linux"},
                       config={"n": 2}, rows=[Row(512, 128, runs, roof)], batch=batch,
                       bandwidth={"chip": "NVIDIA H100 SXM", "table_gbs": 3350.0, "source": "x",
                                  "measured_gbs": 2400.0})


def test_json_round_trip(tmp_path) -> None:
    a = _result()
    path = a.save(tmp_path / "a.json")
    b = BenchResult.load(path)
    assert b.to_dict() == a.to_dict()
    assert b.rows[0].stats["decode_tps"].mean == pytest.approx(a.rows[0].stats["decode_tps"].mean)
    assert b.rows[0].roofline.pct_table == pytest.approx(a.rows[0].roofline.pct_table)
    assert b.batch[1].ttft == [0.08, 0.09]


def test_nan_survives_json(tmp_path) -> None:
    a = _result()
    a.batch[0].speedup = math.nan
    b = BenchResult.load(a.save(tmp_path / "a.json"))
    assert math.isnan(b.batch[0].speedup)


def test_markdown_has_the_llama_bench_columns() -> None:
    md = _result().to_markdown()
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| test | TTFT"))
    for col in ("TTFT (ms)", "TPOT (ms)", "pp tok/s", "tg tok/s", "E2E (s)", "throughput (tok/s)",
                "peak mem (GB)", "RSS (GB)"):
        assert col in header
    row = next(line for line in lines if line.startswith("| pp512+tg128 | 55.00 ± 7.07"))
    assert "17.05 ± 0.07" in row  # peak memory in GB
    assert "% of ceiling" in md and "2x" in md and "1.65x" in md


def test_csv_round_trip() -> None:
    a = _result()
    rows = list(csv.DictReader(io.StringIO(a.to_csv())))
    assert [r["kind"] for r in rows] == ["single", "batch", "batch"]
    single = rows[0]
    assert float(single["ttft_mean"]) == pytest.approx(a.rows[0].stats["ttft"].mean)
    assert float(single["decode_tps_mean"]) == pytest.approx(a.rows[0].stats["decode_tps"].mean)
    assert float(single["pct_table"]) == pytest.approx(a.rows[0].roofline.pct_table)
    assert float(rows[2]["speedup"]) == pytest.approx(210 / 127)


def test_compare_side_by_side() -> None:
    md = compare_markdown(_result(1.0), _result(2.0), names=("bf16", "q4"))
    line = next(x for x in md.splitlines() if "| tg tok/s |" in x)
    assert line.endswith("| 0.500 |")  # B decodes half as fast
    assert "2x batch" in md and "% of roofline" in md


def test_compare_without_shared_shapes() -> None:
    b = _result()
    b.rows[0].pp = 1024
    md = compare_markdown(_result(), b)
    assert "share no prompt" in md and "pp1024+tg128" in md


def test_load_errors_are_one_line(tmp_path) -> None:
    (tmp_path / "bad.json").write_text("{nope")
    (tmp_path / "other.json").write_text(json.dumps({"schema": "x"}))
    for name in ("bad.json", "other.json", "missing.json"):
        with pytest.raises(TemperError) as err:
            BenchResult.load(tmp_path / name)
        assert "\n" not in str(err.value)


def test_cli_runs_saves_and_compares(tiny_llama, tmp_path, capsys) -> None:
    out = tmp_path / "r.json"
    code = main(["bench", str(tiny_llama), "--pp", "16,24", "--tg", "4", "-n", "2", "--batch", "1,2",
                 "--no-copy-test", "--json", str(out), "-q"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| pp16+tg4 |" in printed and "| pp24+tg4 |" in printed and "| 2x |" in printed
    saved = BenchResult.load(out)
    assert [len(r.runs) for r in saved.rows] == [2, 2]
    assert main(["bench", "--compare", str(out), str(out)]) == 0
    assert "| 1.000 |" in capsys.readouterr().out
    assert main(["bench", str(tiny_llama), "--pp", "8", "--tg", "3", "-n", "1", "--csv", "-q",
                 "--no-copy-test"]) == 0
    assert capsys.readouterr().out.startswith("model,chip,device,kind,test")


@pytest.mark.parametrize("argv", [
    ["bench"], ["bench", "/no/such/model"], ["bench", "--compare", "/no/a.json", "/no/b.json"],
])
def test_cli_errors(argv, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("temper: ") and err.count("\n") == 1


def test_cli_rejects_bad_numbers(capsys, tiny_llama) -> None:
    assert main(["bench", str(tiny_llama), "--tg", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "m", "--pp", "5,x"])


def test_a_demo_like_run_reads_honestly() -> None:
    """The 115 MB demo on CPU: the model as stored (not its fp32 working copy), n=1 without a fake ± 0,
    a ceiling above 100% explained, and a chip outside the table named as such."""
    run = RunTiming(512, 128, 0.0, 0.5, 10.0, peak_memory=600_000_000)
    roof = Roofline(538_000_000, 1_000_000, None, 5.0, run.decode_tps, None, "")
    result = BenchResult(model={"name": "SmolLM2-135M-Instruct", "weight_bytes": 538e6, "params": 134.5e6,
                                "bpw": 32.0, "stored_bytes": 115.2e6, "stored_bpw": 6.85},
                         machine={"chip": "cpu"}, config={"n": 1}, rows=[Row(512, 128, [run], roof)],
                         bandwidth={"chip": None, "table_gbs": None, "measured_gbs": 5.0})
    md = result.to_markdown()
    assert "115.20 MB" in md and "6.85 bits/weight (runs as a 538.00 MB working copy in memory)" in md
    assert "32.00 bits/weight" not in md
    assert "± 0.00" not in md and "(n=1)" in md
    assert "%*" in md and "above 100%: the ceiling is a lower bound" in md
    assert "this chip is not in temper's table" in md and "chip not in table" not in md
