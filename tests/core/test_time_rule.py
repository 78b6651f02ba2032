"""The quantize time rule the wizard shows before a job starts (core/quant/time_rule.py)."""

from __future__ import annotations

from temper.core.quant.time_rule import likely_seconds


def test_more_work_takes_longer_and_more_cores_take_less():
    base = likely_seconds(134_515_008, 4096, 4096, cores=2)
    assert base is not None and base > 0
    assert likely_seconds(269_030_016, 4096, 4096, cores=2) > base          # a model twice the size
    assert likely_seconds(134_515_008, 8192, 4096, cores=2) > base          # more calibration tokens
    assert likely_seconds(134_515_008, 4096, 0, cores=2) < base             # no evaluation
    assert likely_seconds(134_515_008, 4096, 4096, exact_candidates=6, cores=2) > base
    assert likely_seconds(134_515_008, 4096, 4096, cores=4) < base
    assert likely_seconds(134_515_008, 4096, 4096, cores=64) == likely_seconds(134_515_008, 4096, 4096, cores=8)


def test_no_figure_on_a_gpu():
    assert likely_seconds(134_515_008, 4096, 4096, on_cpu=False) is None
