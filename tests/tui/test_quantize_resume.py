"""A quantize run killed (SIGKILL) in the middle of its sensitivity pass is offered for resume when the
app starts again, resumes from its checkpoint, and ends with the same plan as an uninterrupted run."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from temper.core import jobs
from temper.core.paths import data_dir
from temper.core.quant.pipeline import quantize, result_dict
from temper.core.quant.request import QuantRequest
from textual.widgets import ContentSwitcher, Static


@pytest.fixture
def make_app(engine):
    """The shell's test app (fixed user@host, no animations) on the session engine."""
    from shell_app import new_app

    return lambda **kwargs: new_app(engine, **kwargs)


KILL_AT = 5      # exact-pass tensors finished before the kill

SCRIPT = """
import os, signal, sys, json
from temper.core.engine import Engine
from temper.core.quant.pipeline import quantize, result_dict
from temper.core.quant.request import QuantRequest

class KillMidPass:
    def __init__(self, ctx): self._ctx = ctx
    def __getattr__(self, name): return getattr(self._ctx, name)
    def emit(self, event):
        self._ctx.emit(event)
        if getattr(event, "method", None) == "exact" and getattr(event, "done", 0) == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

request = QuantRequest.from_dict(json.loads(sys.argv[1]))
Engine().run(lambda ctx: quantize(KillMidPass(ctx), request))
"""


def request_for(model: Path, out: Path) -> QuantRequest:
    return QuantRequest(model=str(model), target_bpw=3.6, bits=[2, 3, 4, 6], group_sizes=[64], samples=4,
                        seq_len=64, sensitivity_mode="exact", output=str(out))


def test_killed_run_resumes_from_the_app_with_the_same_plan(make_app, engine, tiny_llama: Path,
                                                            tmp_path: Path, monkeypatch) -> None:
    home = Path(os.environ["TEMPER_HOME"])
    # 1. killed in the middle of the sensitivity pass
    request = request_for(tiny_llama, tmp_path / "resumed")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(request.to_dict()), str(KILL_AT)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "TEMPER_HOME": str(home)})
    assert proc.returncode == -9, proc.stderr[-2000:]
    (record,) = jobs.interrupted("quantize")
    assert record.phase == "sensitivity"
    (checkpoint,) = (data_dir() / "sensitivity").glob("*-exact*.json")   # -exact-<reuse key>.json
    partial = json.loads(checkpoint.read_text())
    measured = [t for t in partial["tensors"] if "exact" in t["methods"].values()]
    assert len(measured) == KILL_AT and len(partial["tensors"]) > KILL_AT
    assert not (tmp_path / "resumed").exists()

    # 2. the app offers it; Resume finishes it
    app = make_app()

    async def main() -> dict:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("f2")
            await pilot.pause()
            assert "stopped in sensitivity" in str(app.query_one("#resume-text", Static).render())
            app.query_one("#resume-yes").press()
            view = app.query_one("#quantize-view")
            for _ in range(600):
                if view.query_one(ContentSwitcher).current == "step-result":
                    break
                await pilot.pause(0.1)
            assert view.query_one(ContentSwitcher).current == "step-result", view.query_one("#run-message").render()
            return view.result

    resumed = asyncio.run(main())
    assert jobs.load(record.id).status == "done" and jobs.load(record.id).attempts == 2
    assert resumed["verified"] and Path(resumed["output"]).is_dir()

    # 3. an uninterrupted run of the same request, measured from scratch in another home
    monkeypatch.setenv("TEMPER_HOME", str(tmp_path / "fresh-home"))
    fresh = result_dict(engine.run(lambda ctx: quantize(ctx, request_for(tiny_llama, tmp_path / "fresh"))))
    assert fresh["plan"] == resumed["plan"]
    # same scores up to float summation order (the kernels are not bit-reproducible across processes)
    assert abs(fresh["predicted_kl"] - resumed["predicted_kl"]) <= 1e-4 * fresh["predicted_kl"]
