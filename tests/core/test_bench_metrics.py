"""Metric definitions, chip table, roofline arithmetic, prompts: no model needed."""

from __future__ import annotations

import math

import pytest
from temper.core.bench import chips
from temper.core.bench.metrics import RunTiming, Stat, fmt, summarize
from temper.core.bench.prompts import PromptMaker
from temper.core.bench.roofline import Roofline


def test_run_timing_definitions() -> None:
    t = RunTiming(prompt_tokens=100, generated=11, start=10.0, first_token=10.5, end=12.5)
    assert t.ttft == pytest.approx(0.5)  # first token − start
    assert t.decode_time == pytest.approx(2.0)
    assert t.tpot == pytest.approx(0.2)  # decode time / (n − 1)
    assert t.decode_tps == pytest.approx(5.0)
    assert t.prefill_tps == pytest.approx(200.0)
    assert t.e2e == pytest.approx(2.5)
    assert t.throughput == pytest.approx(111 / 2.5)  # (prompt + generated) / e2e


def test_one_token_has_no_tpot() -> None:
    t = RunTiming(prompt_tokens=4, generated=1, start=0.0, first_token=1.0, end=1.0)
    assert math.isnan(t.tpot) and math.isnan(t.decode_tps)


def test_stat_is_mean_and_sample_sd() -> None:
    s = Stat.of([1.0, 2.0, 3.0, math.nan])
    assert (s.mean, s.n) == (2.0, 3)
    assert s.sd == pytest.approx(1.0)
    assert Stat.of([5.0]).sd == 0.0
    assert Stat.of([]).n == 0


def test_summarize_and_format() -> None:
    runs = [RunTiming(10, 5, 0.0, 0.1, 0.5), RunTiming(10, 5, 0.0, 0.3, 0.7)]
    st = summarize(runs)
    assert st["ttft"].mean == pytest.approx(0.2)
    assert fmt("ttft", st["ttft"]) == "200.00 ± 141.42"  # shown in ms
    assert fmt("decode_tps", Stat.of([])) == "-"


@pytest.mark.parametrize(("name", "cores", "expected"), [
    ("NVIDIA H100 80GB HBM3", None, 3350),
    ("NVIDIA H100 PCIe", None, 2000),
    ("NVIDIA H100 NVL", None, 3900),
    ("NVIDIA H200", None, 4800),
    ("NVIDIA A100-SXM4-80GB", None, 2039),
    ("NVIDIA A100 80GB PCIe", None, 1935),
    ("NVIDIA A100-PCIE-40GB", None, 1555),
    ("NVIDIA L40S", None, 864),
    ("NVIDIA L4", None, 300),
    ("NVIDIA GeForce RTX 4090", None, 1008),
    ("NVIDIA GeForce RTX 5090", None, 1792),
    ("Apple M1", None, 68.25),
    ("Apple M1 Ultra", None, 800),
    ("Apple M2 Pro", None, 200),
    ("Apple M3 Max", 14, 300),
    ("Apple M3 Max", 16, 400),
    ("Apple M4 Max", 14, 410),
    ("Apple M4 Max", 16, 546),
    ("Apple M4 Pro", None, 273),
    ("Apple M5", None, 153),
    ("Apple M5 Pro", None, 307),
    ("Apple M5 Max", None, 614),
])
def test_chip_table(name: str, cores: int | None, expected: float) -> None:
    chip = chips.lookup(name, cores)
    assert chip is not None and chip.bandwidth_gbs == expected and chip.source


@pytest.mark.parametrize("name", ["", "Intel(R) Xeon(R) Processor", "Apple M5 Ultra", "AMD EPYC 7763"])
def test_unknown_chips_have_no_table_figure(name: str) -> None:
    assert chips.lookup(name) is None


def test_roofline_ceiling_and_percent() -> None:
    r = Roofline(weight_bytes=15_000_000_000, kv_bytes=85_000_000, table_gbs=3350, measured_gbs=2400,
                 decode_tps=144.0)
    assert r.bytes_per_token == 15_085_000_000
    assert r.ceiling_table == pytest.approx(3350e9 / 15.085e9)
    assert r.pct_table == pytest.approx(100 * 144 / (3350e9 / 15.085e9))
    assert r.pct_measured == pytest.approx(100 * 144 / (2400e9 / 15.085e9))
    assert r.achieved_gbs == pytest.approx(15.085 * 144)
    assert Roofline(1, 0, None, None, 1.0).pct_table is None


def test_prompts_have_unique_prefixes_and_skip_special_tokens() -> None:
    maker = PromptMaker(64, exclude={0, 1, 2}, seed=1)
    prompts = [maker.make(16) for _ in range(200)]
    assert len({tuple(p[:4]) for p in prompts}) == 200
    assert all(len(p) == 16 for p in prompts)
    assert not {0, 1, 2} & {t for p in prompts for t in p}
    assert all(0 <= t < 64 for p in prompts for t in p)
    assert len(maker.make(1)) == 1
