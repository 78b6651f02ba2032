"""docs/benchmarks/quality_table.py: merging a second run into the real-model table, and the mlx-lm verdicts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "benchmarks"))
import quality_table  # noqa: E402


def row(name: str, bpw: float, kl: float) -> dict:
    return {"name": name, "real_bpw": bpw, "kl_mean": kl, "kl_se": 0.01, "kl_p95": 1.0, "kl_p99": 2.0, "top1": 0.7,
            "ppl": 15.0, "seconds": 1.0, "peak_rss": 1e9, "peak_mlx": 1e8}


def doc(rows: list[dict], skipped: list, ppl: float = 14.38, ev: str = "evaluation sha 1") -> dict:
    return {"eval": ev, "calib": "calibration sha 2", "base_ppl": ppl, "rows": [{**r, "run": 1} for r in rows],
            "skipped": [[n, w, 1] for n, w in skipped],
            "runs": [{"command": "--x", "load": [1.0, 1.0, 1.0], "seconds": 10.0}]}


def test_merge_keeps_old_rows_replaces_remeasured_and_drops_now_run_entries():
    old = doc([row("temper 4.5 (default)", 4.5, 0.18), row("mlx-lm uniform-4 g64", 4.503, 0.44)],
              [("mlx-lm GPTQ 4-bit", "not run"), ("temper 3.8 --awq", "time budget spent")])
    new = doc([row("mlx-lm GPTQ 4-bit", 4.92, 0.21), row("mlx-lm uniform-4 g64", 4.503, 0.40)], [])
    out = quality_table.merge(old, new)
    names = {r["name"]: r for r in out["rows"]}
    assert set(names) == {"temper 4.5 (default)", "mlx-lm uniform-4 g64", "mlx-lm GPTQ 4-bit"}
    assert names["mlx-lm uniform-4 g64"]["kl_mean"] == 0.40 and names["mlx-lm uniform-4 g64"]["run"] == 2
    assert names["temper 4.5 (default)"]["run"] == 1 and len(out["runs"]) == 2
    assert out["skipped"] == [["temper 3.8 --awq", "time budget spent", 1]]
    text = quality_table.render(out, "hand-written note")
    assert "| 2 | mlx-lm GPTQ 4-bit | 4.920 |" in text and text.rstrip().endswith("hand-written note")


@pytest.mark.parametrize("change", [{"ppl": 15.0}, {"ev": "evaluation sha 9"}])
def test_merge_refuses_another_reference(change):
    with pytest.raises(SystemExit, match="cannot merge"):
        quality_table.merge(doc([], []), doc([], [], **change))


def test_against_mlx_lm_names_the_rows_temper_does_not_beat():
    rows = [row("temper 3.8 (default)", 3.8, 0.44), row("temper 4.5 --no-clip (GPTQ only)", 4.5, 0.17),
            row("temper 4.5 (default)", 4.5, 0.18), row("mlx-lm GPTQ 4-bit", 4.92, 0.21),
            row("mlx-lm uniform-4 g64", 4.503, 0.15), row("mlx-lm uniform-3 g64", 3.503, 2.1)]
    out = quality_table.against_mlx_lm(rows)
    assert out[0] == "temper's default does not beat: mlx-lm uniform-3 g64, mlx-lm uniform-4 g64."
    lines = {x.split(" (")[0][2:]: x for x in out[2:]}
    assert "temper's default beats it" in lines["mlx-lm GPTQ 4-bit"] and "= 0.86x" in lines["mlx-lm GPTQ 4-bit"]
    assert "**temper does not beat it**" in lines["mlx-lm uniform-4 g64"]
    assert "no temper row" in lines["mlx-lm uniform-3 g64"]


def test_notes_below_the_mark_survive_a_rewrite(tmp_path):
    md = tmp_path / "t.md"
    quality_table.write(md, doc([row("temper 5.0 (default)", 5.0, 0.08)], []))
    md.write_text(md.read_text() + "measured apart: see here\n")
    quality_table.write(md, doc([row("temper 5.0 (default)", 5.0, 0.07)], []))
    assert "measured apart: see here" in md.read_text() and "0.0700" in md.read_text()
    assert md.with_suffix(".json").is_file()


def test_a_run_merged_into_its_own_out_file_is_counted_once(tmp_path):
    """real_model_quality.py writes the table after every row; with --merge naming the --out JSON, the earlier
    run is read once, so the runs do not pile up row after row."""
    import argparse
    import json

    import real_model_quality

    md = tmp_path / "t.md"
    quality_table.write(md, doc([row("temper 5.0 (default)", 5.0, 0.08)], []))
    args = argparse.Namespace(merge=md.with_suffix(".json"), out=md)
    args.previous = json.loads(args.merge.read_text())
    for n in range(3):
        real_model_quality.write_table(args, doc([row(f"mlx-lm GPTQ {n}", 4.9, 0.2)], []))
    out = json.loads(md.with_suffix(".json").read_text())
    assert len(out["runs"]) == 2 and [r["run"] for r in out["rows"]] == [1, 2]


def test_only_runs_rows_in_the_order_of_its_patterns():
    import real_model_quality

    rows = [(n, []) for n in ("mlx-lm uniform-4 g64", "temper 4.5 (default)", "mlx-lm GPTQ 4-bit", "mlx-lm AWQ 4-bit",
                              "mlx-lm AWQ 3-bit", "temper 3.5 (default)")]
    got = real_model_quality.selected(rows, ["mlx-lm AWQ", "temper 4.5", "GPTQ"], ["3-bit"])
    assert [n for n, _ in got] == ["mlx-lm AWQ 4-bit", "temper 4.5 (default)", "mlx-lm GPTQ 4-bit"]
    assert [n for n, _ in real_model_quality.selected(rows, None, ["mlx-lm"])] == ["temper 4.5 (default)",
                                                                                 "temper 3.5 (default)"]
