"""Memory figures and rules said once: peak RSS in bytes on every OS, and the wizard's fits-in-memory
preflight is the core's own streaming rule."""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from temper.core.rss import peak_rss_bytes


@pytest.mark.parametrize("platform, factor", [("darwin", 1), ("linux", 1024)])
def test_peak_rss_is_bytes_on_macos_and_kilobytes_times_1024_on_linux(monkeypatch, platform, factor) -> None:
    """Before: multiplied by 1024 on macOS too, where ru_maxrss is already bytes (1024x too big)."""
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setattr(resource, "getrusage", lambda _who: SimpleNamespace(ru_maxrss=3_000_000))
    assert peak_rss_bytes() == 3_000_000 * factor


@pytest.mark.parametrize("free_over_fp32", [1.3, 1.6])
def test_the_wizard_preflight_streams_exactly_when_the_core_would(tiny_llama, monkeypatch, free_over_fp32) -> None:
    """Before: the wizard said 'fits in memory' at 1.25 x disk + 256 MiB while the core streamed above
    fp32 x 1.5: with 1.3 x fp32 free the wizard promised an in-memory pass the core then streamed."""
    import psutil
    from temper.core.quant.request import QuantRequest
    from temper.core.quant.streamed import fp32_bytes, needs_streaming
    from temper.tui.engine_quant_client import EngineQuantClient

    free = int(fp32_bytes(tiny_llama) * free_over_fp32)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=free))
    client = EngineQuantClient(None)
    model = client.model(str(tiny_llama))
    flight = client.preflight(model, QuantRequest(model=str(tiny_llama)))
    assert flight.streamed == needs_streaming(Path(tiny_llama)) == (free_over_fp32 < 1.5)
    assert flight.free_bytes == free and flight.needed_bytes == int(fp32_bytes(tiny_llama) * 1.5)
