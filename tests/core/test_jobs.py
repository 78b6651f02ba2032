"""Persistent job records: atomic JSON in jobs_dir(), interrupted = left running by a dead process."""

from __future__ import annotations

import json
import subprocess
import sys

from temper.core import jobs
from temper.core.paths import jobs_dir


def test_record_round_trip_and_lifecycle() -> None:
    record = jobs.create("quantize", {"model": "/m", "target_bpw": 4.5})
    assert record.status == "running" and record.path.is_file()
    record.step("sensitivity", 3, 10)
    loaded = jobs.load(record.id)
    assert loaded.phase == "sensitivity" and loaded.progress["sensitivity"] == [3, 10]
    assert loaded.request == {"model": "/m", "target_bpw": 4.5}
    assert not loaded.interrupted          # this process is alive
    record.finish("done", result={"bpw": 4.4})
    assert jobs.load(record.id).status == "done"
    assert jobs.interrupted("quantize") == []
    assert [p.name for p in jobs_dir().iterdir()] == [f"{record.id}.json"]   # no temp files left


def test_record_left_running_by_a_killed_process_is_interrupted() -> None:
    code = ("from temper.core import jobs; r = jobs.create('quantize', {'model': 'x'}); "
            "r.step('sensitivity', 5, 12); print(r.id)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    job_id = out.stdout.strip()
    (found,) = jobs.interrupted("quantize")
    assert found.id == job_id and found.phase == "sensitivity"
    jobs.discard(found)
    assert jobs.interrupted("quantize") == []
    assert jobs.load(job_id).status == "cancelled"


def test_pid_reuse_does_not_count_as_alive() -> None:
    record = jobs.create("quantize", {})
    record.pid_started -= 1000          # same pid, other start time: a different process
    record.save()
    assert jobs.load(record.id).interrupted


def test_corrupt_record_is_skipped() -> None:
    good = jobs.create("quantize", {})
    (jobs_dir() / "broken.json").write_text("{not json")
    (jobs_dir() / "other.json").write_text(json.dumps({"id": "other"}))
    assert [r.id for r in jobs.all_jobs()] == [good.id]
