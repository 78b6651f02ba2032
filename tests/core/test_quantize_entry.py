"""One entry into quantization for the CLI and the app: both run `pipeline.quantize` under a job record, AWQ
and the calibration file reach the core from both routes, and the CLI resumes an unfinished job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from quant_support import HELD_OUT
from temper.cli.main import main
from temper.core import jobs
from temper.core.quant.request import QuantRequest


@pytest.fixture
def cli_engine(engine, monkeypatch):
    import temper.core.engine.thread as thread

    monkeypatch.setattr(thread, "_default", engine)
    return engine


@pytest.fixture
def calib_file(tmp_path) -> Path:
    text = tmp_path / "my-calibration.txt"
    text.write_text(HELD_OUT * 4)
    return text


def test_the_app_route_applies_awq(engine, tiny_llama, tmp_path):
    """Before: the app's pipeline built the core request without `awq`, so the wizard's AWQ did nothing."""
    from temper.tui.engine_quant_client import EngineQuantClient

    client = EngineQuantClient(engine)
    out = tmp_path / "awq-app"
    request = QuantRequest(model=str(tiny_llama), recipe="uniform-4", awq=True, samples=2, seq_len=48,
                           evaluate=False, output=str(out))
    result = client.start(request).result(timeout=300)
    assert result["verified"]
    assert "groups scaled" in (out / "README.md").read_text()
    (record,) = [r for r in jobs.all_jobs("quantize") if r.request["output"] == str(out)]
    assert record.status == "done" and record.request["awq"] is True


def test_the_cli_awq_calibrates_on_the_users_file(cli_engine, tiny_llama, tmp_path, calib_file, monkeypatch):
    """Before: `temper quantize --awq --calibration FILE` scaled on the built-in text, not FILE."""
    import numpy as np
    from mlx_lm.utils import load_tokenizer
    from temper.core.quant import write
    from temper.core.quant.calibration import calibration_set

    seen = {}
    real = write.write_quantized

    def spy(*args, **kwargs):
        seen["chunks"] = kwargs.get("awq_chunks")
        return real(*args, **kwargs)

    monkeypatch.setattr(write, "write_quantized", spy)
    out = tmp_path / "awq-cli"
    assert main(["quantize", str(tiny_llama), "--recipe", "uniform-4", "--awq", "--calibration", str(calib_file),
                 "--samples", "2", "--seq-len", "48", "--no-eval", "-o", str(out), "-q"]) == 0
    wanted = calibration_set(load_tokenizer(tiny_llama), samples=2, seq_len=48, source=str(calib_file))
    assert np.array_equal(np.asarray(seen["chunks"]), wanted.chunks)
    assert "groups scaled" in (out / "README.md").read_text()


def test_every_cli_run_has_a_job_record_and_a_failed_one_resumes(cli_engine, tiny_llama, tmp_path, capsys):
    """Before: resume existed in the app only. A run that failed (here: the output was in the way) is run
    again by `temper quantize --resume` with the request it was started with."""
    out = tmp_path / "resumed"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["quantize", str(tiny_llama), "--recipe", "uniform-4", "--no-eval", "-o", str(out)]
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert jobs.all_jobs("quantize") == []            # refused before anything ran: no record
    record = jobs.create("quantize", QuantRequest(model=str(tiny_llama), recipe="uniform-4", evaluate=False,
                                                  output=str(tmp_path / "later")).to_dict())
    record.finish("failed", error="killed")
    assert main(["quantize", "--resume", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["job"] == record.id and data["verify"]["ok"]
    again = jobs.load(record.id)
    assert again.status == "done" and again.attempts == 2 and again.result["verified"]
    assert main(["quantize", "--resume", record.id]) == 2
    assert "already finished" in capsys.readouterr().err
    assert main(["quantize", "--resume"]) == 2
    assert "no unfinished quantize job" in capsys.readouterr().err


def test_a_cli_run_is_recorded_like_an_app_run(cli_engine, tiny_llama, tmp_path, capsys):
    out = tmp_path / "recorded"
    assert main(["quantize", str(tiny_llama), "--recipe", "uniform-4", "--no-eval", "-o", str(out), "-q"]) == 0
    (record,) = jobs.all_jobs("quantize")
    assert record.status == "done" and record.result["output"] == str(out)
    assert QuantRequest.parse(record.request).output == str(out)


def test_every_quantize_field_travels_profile_to_request_to_core_to_record(cli_engine, tmp_path, monkeypatch):
    """Each [quantize] key, set to a value other than its default in a profile, reaches the core call and
    the job record unchanged (through `temper --profile FILE quantize`)."""
    from temper.core.profiles.schema import QUANTIZE
    from temper.core.quant import job as job_module

    calib, held = tmp_path / "calib.txt", tmp_path / "held.txt"
    calib.write_text(HELD_OUT)
    held.write_text(HELD_OUT)
    values = {"recipe": "optiq-like", "target_bpw": 4.25, "size_gb": 0.002, "bits": [3, 4, 8], "group_sizes": [64],
              "modes": ["affine", "mxfp8"], "protect": ["lm_head:8"], "awq": True, "calibration": str(calib), "samples": 3,
              "seq_len": 24, "sensitivity_mode": "exact", "evaluate": False, "evaluation": str(held),
              "eval_tasks": "gsm8k", "eval_limit": 3, "gptq": False, "clip": False, "polish_steps": 7}
    assert set(values) == set(QUANTIZE)                   # a new field must join this test
    for key, value in values.items():
        assert value != QUANTIZE[key].default, key
    profile = tmp_path / "every.toml"
    import tomlkit

    profile.write_text(tomlkit.dumps({"version": 1, "quantize": values}))
    seen = {}

    def capture(ctx, request, record):
        seen["request"], seen["record"] = request, record
        raise job_module.QuantError("captured")

    monkeypatch.setattr(job_module, "run_phases", capture)
    from temper.core.library.synthetic import build_model

    model = build_model(tmp_path / "m", "llama")
    assert main(["--profile", str(profile), "quantize", str(model), "-q"]) == 2
    core = seen["request"]
    for key, value in values.items():
        assert getattr(core, key) == value, key
    record = jobs.load(seen["record"].id)
    assert {k: record.request[k] for k in values} == values and record.status == "failed"


@pytest.mark.parametrize("resumable", [False, True])
def test_closing_the_app_leaves_the_job_open_for_resume(engine, tiny_llama, tmp_path, resumable):
    """A user's cancel records the job as cancelled; the app closing mid-run (cancel_all(resumable=True), what
    quitting does) leaves it open, so the next start offers to resume it."""
    from temper.core.engine.events import Cancelled, Progress
    from temper.core.quant.pipeline import quantize

    out = tmp_path / f"closed-{resumable}"
    request = QuantRequest(model=str(tiny_llama), recipe="uniform-4", samples=2, seq_len=48, evaluate=False,
                           output=str(out))
    job = engine.submit(lambda ctx: quantize(ctx, request), kind="quantize")
    for event in job.events(timeout=300):
        if isinstance(event, Progress):
            engine.cancel_all(resumable=resumable)
        if isinstance(event, Cancelled):
            break
    (record,) = [r for r in jobs.all_jobs("quantize") if r.request["output"] == str(out)]
    assert record.status == ("running" if resumable else "cancelled")
