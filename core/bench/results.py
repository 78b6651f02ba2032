"""Benchmark results: JSON on disk (with machine info), Markdown tables (llama-bench / oMLX style), CSV,
and a side-by-side comparison of two saved runs."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import atomic
from ..errors import TemperError
from .metrics import METRICS, RunTiming, Stat, fmt, scale, summarize
from .roofline import Roofline

SCHEMA = "temper.bench/1"


@dataclass
class Row:
    """One prompt × generation shape: its counted runs and the roofline at its context."""

    pp: int
    tg: int
    runs: list[RunTiming]
    roofline: Roofline | None = None

    @property
    def test(self) -> str:
        return f"pp{self.pp}+tg{self.tg}"

    @property
    def stats(self) -> dict[str, Stat]:
        return summarize(self.runs)


@dataclass
class BatchRow:
    concurrency: int
    prompt_tokens: int
    tg: int
    ttft: list[float]  # per request (of every repetition), seconds
    generated: int  # tokens of one repetition, all requests
    e2e: float  # mean over repetitions
    decode_tps: float  # aggregate over all requests, mean over repetitions
    throughput: float  # mean over repetitions
    peak_memory: int  # highest over repetitions
    speedup: float = math.nan
    n: int = 1  # repetitions
    decode_tps_sd: float = 0.0


@dataclass
class BenchResult:
    model: dict[str, Any]
    machine: dict[str, Any]
    config: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    batch: list[BatchRow] = field(default_factory=list)
    bandwidth: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    # -- JSON ---------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "created": self.created,
            "model": self.model,
            "machine": self.machine,
            "config": self.config,
            "bandwidth": self.bandwidth,
            "rows": [{
                "test": r.test, "pp": r.pp, "tg": r.tg,
                "stats": {k: _clean(v.to_dict()) for k, v in r.stats.items()},
                "runs": [_clean(t.to_dict()) for t in r.runs],
                "roofline": _clean(r.roofline.to_dict()) if r.roofline else None,
            } for r in self.rows],
            "batch": [_clean(vars(b)) for b in self.batch],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        if data.get("schema") != SCHEMA:
            raise TemperError(f"not a temper bench result (schema {data.get('schema')!r}, expected {SCHEMA})")
        rows = [Row(pp=int(r["pp"]), tg=int(r["tg"]), runs=[RunTiming.from_dict(t) for t in r["runs"]],
                    roofline=Roofline.from_dict(_unclean(r["roofline"])) if r.get("roofline") else None)
                for r in data.get("rows", [])]
        batch = [BatchRow(**_unclean(b)) for b in data.get("batch", [])]
        return cls(model=data.get("model", {}), machine=data.get("machine", {}), config=data.get("config", {}),
                   rows=rows, batch=batch, bandwidth=data.get("bandwidth", {}), created=data.get("created", ""))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic.write_text(path, json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> BenchResult:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise TemperError(f"{path}: no such file") from None
        except (OSError, ValueError) as exc:
            raise TemperError(f"{path} is not a JSON file: {exc}") from exc
        if not isinstance(data, dict):
            raise TemperError(f"{path} is not a temper bench result")
        try:
            return cls.from_dict(data)
        except TemperError as exc:
            raise TemperError(f"{path}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise TemperError(f"{path} is a damaged temper bench result ({exc})") from exc

    # -- Markdown -----------------------------------------------------------------------------------------
    def heading(self) -> str:
        m, mc = self.model, self.machine
        params = _count(m["params"]) if m.get("params") else "?"
        working = ""
        if m.get("stored_bytes"):      # as stored; the in-memory working copy (fp32 on CPU) said apart
            size, bpw = _bytes(m["stored_bytes"]), f"{m['stored_bpw']:.2f}"
            if m.get("weight_bytes") and abs(m["weight_bytes"] - m["stored_bytes"]) > 0.05 * m["stored_bytes"]:
                working = f" (runs as a {_bytes(m['weight_bytes'])} working copy in memory)"
        else:
            size = _bytes(m["weight_bytes"]) if m.get("weight_bytes") else "?"
            bpw = f"{m['bpw']:.2f}" if m.get("bpw") else "?"
        mem = f"{mc['memory_bytes'] / 2**30:.0f} GiB" if mc.get("memory_bytes") else "?"
        kv = f" · KV cache {m['kv']}" if m.get("kv") and m["kv"] != "float" else ""
        return (f"**{m.get('name', 'model')}**: {size}, {params} params, {bpw} bits/weight{working}{kv} · "
                f"{mc.get('chip', '?')}, {mem}, {mc.get('os', '?')} · MLX {mc.get('mlx', '?')} "
                f"({mc.get('device', '?')}), mlx-lm {mc.get('mlx_lm', '?')} · n={self.config.get('n', '?')}")

    def to_markdown(self) -> str:
        out = [self.heading(), "", markdown_rows(self.rows)]
        if any(r.roofline for r in self.rows):
            out += ["", markdown_roofline(self.rows, self.bandwidth)]
        if self.batch:
            out += ["", markdown_batch(self.batch)]
        return "\n".join(out) + "\n"

    # -- CSV ----------------------------------------------------------------------------------------------
    def to_csv(self) -> str:
        buf = io.StringIO()
        cols = ["model", "chip", "device", "kind", "test", "pp", "tg", "n"]
        for name in METRICS:
            cols += [f"{name}_mean", f"{name}_sd"]
        cols += ["bytes_per_token", "ceiling_table_tps", "pct_table", "ceiling_measured_tps", "pct_measured",
                 "concurrency", "ttft_max", "speedup"]
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        base = {"model": self.model.get("name"), "chip": self.machine.get("chip"),
                "device": self.machine.get("device")}
        for r in self.rows:
            rec: dict[str, Any] = {**base, "kind": "single", "test": r.test, "pp": r.pp, "tg": r.tg,
                                   "n": len(r.runs)}
            for name, st in r.stats.items():
                rec[f"{name}_mean"], rec[f"{name}_sd"] = _num(st.mean), _num(st.sd)
            if r.roofline:
                rf = r.roofline
                rec.update(bytes_per_token=rf.bytes_per_token, ceiling_table_tps=_num(rf.ceiling_table),
                           pct_table=_num(rf.pct_table), ceiling_measured_tps=_num(rf.ceiling_measured),
                           pct_measured=_num(rf.pct_measured))
            w.writerow(rec)
        for b in self.batch:
            t = Stat.of(b.ttft)
            w.writerow({**base, "kind": "batch", "test": f"{b.concurrency}x pp{b.prompt_tokens}+tg{b.tg}",
                        "pp": b.prompt_tokens, "tg": b.tg, "n": b.concurrency,
                        "ttft_mean": _num(t.mean), "ttft_sd": _num(t.sd), "decode_tps_mean": _num(b.decode_tps),
                        "decode_tps_sd": _num(b.decode_tps_sd) if b.n > 1 else "",
                        "e2e_mean": _num(b.e2e), "throughput_mean": _num(b.throughput),
                        "peak_memory_mean": b.peak_memory, "concurrency": b.concurrency,
                        "ttft_max": _num(max(b.ttft) if b.ttft else math.nan), "speedup": _num(b.speedup)})
        return buf.getvalue()


def markdown_rows(rows: list[Row]) -> str:
    head = ["test"] + [label_of(name) for name in METRICS]
    lines = [_md_row(head), _md_row(["---"] + ["---:"] * len(METRICS))]
    for r in rows:
        st = r.stats
        lines.append(_md_row([r.test] + [fmt(name, st[name]) for name in METRICS]))
    return "\n".join(lines)


def markdown_roofline(rows: list[Row], bandwidth: dict[str, Any]) -> str:
    chip = bandwidth.get("chip") or "this chip is not in temper's table"
    table = f"{bandwidth['table_gbs']:.0f} GB/s" if bandwidth.get("table_gbs") else "n/a"
    meas = f"{bandwidth['measured_gbs']:.0f} GB/s" if bandwidth.get("measured_gbs") else "n/a"
    head = ["test", "bytes/token (GB)", "tg tok/s", f"ceiling @ {table} ({chip})", "% of ceiling",
            f"ceiling @ {meas} (copy test)", "% of measured", "achieved GB/s"]
    lines = [_md_row(head), _md_row(["---"] + ["---:"] * (len(head) - 1))]
    for r in rows:
        rf = r.roofline
        if rf is None:
            continue
        lines.append(_md_row([
            r.test, f"{rf.bytes_per_token / 1e9:.3f}", _f(rf.decode_tps, 1), _f(rf.ceiling_table, 1),
            _pct(rf.pct_table), _f(rf.ceiling_measured, 1), _pct(rf.pct_measured), _f(rf.achieved_gbs, 0),
        ]))
    if any(_over(r.roofline.pct_table) or _over(r.roofline.pct_measured) for r in rows if r.roofline):
        lines += ["", "\\* above 100%: the ceiling is a lower bound. The copy test measures one streaming copy; "
                      "decode also reads from caches, and small models fit in them."]
    return "\n".join(lines)


def _over(value: float | None) -> bool:
    return value is not None and not math.isnan(value) and value > 100


def markdown_batch(batch: list[BatchRow]) -> str:
    head = ["batch", "test", "TTFT mean (ms)", "TTFT max (ms)", "aggregate tg tok/s", "throughput (tok/s)",
            "E2E (s)", "speedup", "peak mem (GB)", "n"]
    lines = [_md_row(head), _md_row(["---", "---"] + ["---:"] * (len(head) - 2))]
    for b in batch:
        t = Stat.of(b.ttft)
        lines.append(_md_row([
            f"{b.concurrency}x", f"pp{b.prompt_tokens}+tg{b.tg}", _f(t.mean * 1000, 1),
            _f(max(b.ttft) * 1000 if b.ttft else math.nan, 1),
            _f(b.decode_tps, 1) + (f" ± {b.decode_tps_sd:.1f}" if b.n > 1 else ""), _f(b.throughput, 1),
            _f(b.e2e, 2), _f(b.speedup, 2) + "x" if not math.isnan(b.speedup) else "-", _f(b.peak_memory / 1e9, 2),
            str(b.n),
        ]))
    return "\n".join(lines)


COMPARED = ["decode_tps", "prefill_tps", "ttft", "tpot", "throughput", "peak_memory"]


def compare_markdown(a: BenchResult, b: BenchResult, names: tuple[str, str] = ("A", "B")) -> str:
    """Two runs side by side: every shape present in both, key metrics, and B relative to A."""
    na, nb = names
    lines = [f"- {na}: {a.heading()}", f"- {nb}: {b.heading()}", ""]
    head = ["test", "metric", na, nb, f"{nb} / {na}"]
    lines += [_md_row(head), _md_row(["---", "---", "---:", "---:", "---:"])]
    rows_b = {r.test: r for r in b.rows}
    shared = [r for r in a.rows if r.test in rows_b]
    for ra in shared:
        sa, sb = ra.stats, rows_b[ra.test].stats
        for name in COMPARED:
            ratio = sb[name].mean / sa[name].mean if sa[name].mean else math.nan
            lines.append(_md_row([ra.test, label_of(name), fmt(name, sa[name]), fmt(name, sb[name]),
                                  _f(ratio, 3)]))
        pa, pb = ra.roofline, rows_b[ra.test].roofline
        if pa and pb and pa.pct_table and pb.pct_table:
            lines.append(_md_row([ra.test, "% of roofline", _pct(pa.pct_table), _pct(pb.pct_table),
                                  _f(pb.pct_table / pa.pct_table, 3)]))
    batch_b = {x.concurrency: x for x in b.batch}
    for x in a.batch:
        y = batch_b.get(x.concurrency)
        if y:
            lines.append(_md_row([f"{x.concurrency}x batch", "aggregate tg tok/s", _f(x.decode_tps, 1),
                                  _f(y.decode_tps, 1), _f(y.decode_tps / x.decode_tps, 3)]))
    only = sorted({r.test for r in a.rows} ^ set(rows_b))
    if only:
        lines += ["", f"Shapes in only one run: {', '.join(only)}"]
    if not shared:
        lines += ["", "The two runs share no prompt × generation shape."]
    return "\n".join(lines) + "\n"


def label_of(name: str) -> str:
    """Column label with its unit: 'TTFT (ms)', 'tg tok/s'."""
    label, unit = METRICS[name]
    return label if unit in label else f"{label} ({unit})"


def _bytes(n: float) -> str:
    for unit, k in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= k:
            return f"{n / k:.2f} {unit}"
    return f"{n:.0f} B"


def _count(n: float) -> str:
    for unit, k in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= k:
            return f"{n / k:.2f} {unit}"
    return f"{n:.0f}"


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _f(value: float | None, digits: int) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.0f}%*" if value > 100 else f"{value:.0f}%"


def _num(value: float | None) -> Any:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: store it as null."""
    def one(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return None
        return [one(x) for x in v] if isinstance(v, list) else v

    return {k: one(v) for k, v in d.items()}


def _unclean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (math.nan if v is None and k in ("speedup", "decode_tps", "throughput", "e2e") else v)
            for k, v in d.items()}


__all__ = ["BenchResult", "Row", "BatchRow", "compare_markdown", "scale"]
