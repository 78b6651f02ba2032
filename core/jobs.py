"""Persistent job records: long jobs (quantize) survive the app closing or the SSH link dropping.

One JSON file per job in jobs_dir(), written atomically on every state change. A record says what was
asked (the request, plain JSON), where it got to (phase, per-phase progress) and how it ended. A record
left "running" by a process that no longer exists was interrupted: the app offers to resume it, and the
job function picks up from its own checkpoints (the sensitivity pass resumes from its last layer).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import atomic
from .errors import TemperError
from .paths import jobs_dir

STATUSES = ("running", "done", "failed", "cancelled")


@dataclass
class JobRecord:
    id: str
    kind: str                                  # "quantize"
    request: dict[str, Any]                    # what was asked, enough to run it again
    status: str = "running"
    phase: str = ""
    progress: dict[str, list[int | None]] = field(default_factory=dict)   # phase -> [done, total]
    result: dict[str, Any] | None = None
    error: str | None = None
    pid: int = 0
    pid_started: float = 0.0                   # process start time: guards against pid reuse
    host: str = ""
    created: float = 0.0
    updated: float = 0.0
    attempts: int = 1

    @property
    def path(self) -> Path:
        return jobs_dir() / f"{self.id}.json"

    def save(self) -> JobRecord:
        self.updated = time.time()
        atomic.write_text(self.path, json.dumps(asdict(self), indent=1))
        return self

    # -- lifecycle ------------------------------------------------------------------------------------
    def claim(self) -> JobRecord:
        """Mark this record as run by the current process (a new run or a resume)."""
        self.pid, self.pid_started = _current_process()
        self.host = socket.gethostname()
        self.status = "running"
        self.error = None
        return self.save()

    def step(self, phase: str, done: int = 0, total: int | None = None) -> None:
        self.phase = phase
        self.progress[phase] = [done, total]
        self.save()

    def finish(self, status: str, *, result: dict[str, Any] | None = None, error: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(status)
        self.status = status
        if result is not None:
            self.result = result
        self.error = error
        self.save()

    @property
    def interrupted(self) -> bool:
        """Left 'running' by a process on this host that is gone (killed, crashed, closed)."""
        if self.status != "running":
            return False
        if self.host and self.host != socket.gethostname():
            return False
        return not _alive(self.pid, self.pid_started)


def create(kind: str, request: dict[str, Any]) -> JobRecord:
    now = time.time()
    job_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + "-" + uuid.uuid4().hex[:6]
    record = JobRecord(id=job_id, kind=kind, request=json.loads(json.dumps(request)), created=now)
    return record.claim()


def load(job_id_or_path: str | Path) -> JobRecord:
    path = Path(job_id_or_path)
    if path.suffix != ".json":
        path = jobs_dir() / f"{job_id_or_path}.json"
    try:
        raw = json.loads(path.read_text())
        return JobRecord(**raw)
    except (OSError, ValueError, TypeError) as exc:
        raise TemperError(f"cannot read job record {path.name}: {exc}") from exc


def all_jobs(kind: str | None = None) -> list[JobRecord]:
    """Every readable record, newest first (a corrupt file is skipped, never fatal)."""
    folder = jobs_dir()
    if not folder.is_dir():
        return []
    out = []
    for path in folder.glob("*.json"):
        try:
            record = load(path)
        except TemperError:
            continue
        if kind is None or record.kind == kind:
            out.append(record)
    return sorted(out, key=lambda r: (r.created, r.id), reverse=True)


def interrupted(kind: str | None = None) -> list[JobRecord]:
    return [r for r in all_jobs(kind) if r.interrupted]


def discard(record: JobRecord) -> None:
    """Forget an interrupted job (its checkpoints stay where the job wrote them)."""
    record.finish("cancelled", error="discarded after interruption")


def _current_process() -> tuple[int, float]:
    pid = os.getpid()
    return pid, _start_time(pid) or 0.0


def _start_time(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:
        return None


def _alive(pid: int, started: float) -> bool:
    if pid <= 0:
        return False
    try:
        import psutil

        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return not started or abs(proc.create_time() - started) < 1.0
    except Exception:
        return False
