"""Give MLX a fast BLAS: one guarded re-exec of this process with `LD_PRELOAD` set, before MLX loads.

The dynamic linker reads `LD_PRELOAD` only when a process starts, so the `temper` entry point (and the
test runner, through tests/conftest.py) re-executes itself once with the library found by `blas.find()`.

Guards: Linux only; never when `TEMPER_NO_BLAS_PRELOAD=1`, when MLX is a CUDA build, when MLX is already
imported (too late: the process keeps its BLAS), when a fast BLAS is already loaded (the user preloaded one),
or when this very process is the re-executed one (`TEMPER_BLAS_REEXEC` holds its pid: exec keeps the pid,
so a loop is impossible while child processes, whose pid differs, still get their own chance).

After the re-exec the original `LD_PRELOAD`, `LD_LIBRARY_PATH` and `OPENBLAS_NUM_THREADS` are put back
into `os.environ`, so programs that temper starts (git, editors, a nested temper) don't inherit the BLAS:
the library stays loaded here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping, Sequence

from . import blas

MARK = "TEMPER_BLAS_REEXEC"
_SAVED = "TEMPER_BLAS_SAVED_"  # prefix: the values of _RESTORED before the re-exec
_RESTORED = ("LD_PRELOAD", "LD_LIBRARY_PATH", "OPENBLAS_NUM_THREADS")


def skip_reason(environ: Mapping[str, str] | None = None, modules: Mapping[str, object] | None = None,
                pid: int | None = None) -> str | None:
    """Why this process must not re-exec itself for a BLAS (None: it may)."""
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    pid = os.getpid() if pid is None else pid
    if not sys.platform.startswith("linux"):
        return "not Linux"
    if environ.get(MARK) == str(pid):
        return "already re-executed"
    if environ.get(blas.ENV_DISABLE, "") not in ("", "0"):
        return f"{blas.ENV_DISABLE} is set"
    if "mlx.core" in modules:
        return "MLX is already loaded"
    if blas.cuda_build():
        return "MLX is a CUDA build"
    return None


def blas_threads(environ: Mapping[str, str] | None = None) -> str | None:
    """OPENBLAS_NUM_THREADS to set, or None to leave the user's (or OpenBLAS's) choice.

    OpenBLAS spins its worker threads; on a machine whose other cores are busy that costs up to 10x
    (measured on 2 cores with one busy: 35 vs 190 GFLOP/s at 1024^3). So: the cores not already busy by
    the 1-minute load average, at least 1. Users who set OPENBLAS_NUM_THREADS or OMP_NUM_THREADS win."""
    environ = os.environ if environ is None else environ
    if environ.get("OPENBLAS_NUM_THREADS") or environ.get("OMP_NUM_THREADS"):
        return None
    try:
        cores = len(os.sched_getaffinity(0))
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    return str(max(1, min(cores, round(cores - busy))))


def preload_environ(lib: blas.BlasLibrary, environ: Mapping[str, str] | None = None,
                    pid: int | None = None) -> dict[str, str]:
    """The environment for the re-exec: `lib` first in LD_PRELOAD, its support folder on the library path."""
    env = dict(os.environ if environ is None else environ)
    for name in _RESTORED:
        env[_SAVED + name] = env.get(name, "")  # "": was unset (an empty value means the same)
    env["LD_PRELOAD"] = ":".join(p for p in (str(lib.path), env.get("LD_PRELOAD", "")) if p)
    if lib.support_dir is not None:
        env["LD_LIBRARY_PATH"] = ":".join(p for p in (str(lib.support_dir), env.get("LD_LIBRARY_PATH", "")) if p)
    threads = blas_threads(env)
    if threads:
        env["OPENBLAS_NUM_THREADS"] = threads
    env[MARK] = str(os.getpid() if pid is None else pid)
    return env


def restore_environ(environ: MutableMapping[str, str] | None = None) -> None:
    """In the re-executed process: put LD_PRELOAD / LD_LIBRARY_PATH back as they were for child processes."""
    environ = os.environ if environ is None else environ
    for name in _RESTORED:
        saved = environ.pop(_SAVED + name, None)
        if saved is None:
            continue
        if not saved:
            environ.pop(name, None)
        else:
            environ[name] = saved


def ensure_fast_blas(argv: Sequence[str] | None = None, *, quiet: bool = False) -> str:
    """Re-exec this process with a fast BLAS preloaded when that helps; return what happened.

    Call first thing in an entry point, before anything imports MLX. Returns (when it returns) one of
    "re-executed" (this is the process after the re-exec), "skipped: <why>", "in use" (a fast BLAS is
    already loaded) or "none found" (after printing the one-line hint to stderr unless `quiet`).
    `argv` is the full command line to run again (default: `sys.orig_argv`)."""
    if os.environ.get(MARK) == str(os.getpid()):
        restore_environ()
        return "re-executed"
    reason = skip_reason()
    if reason:
        return f"skipped: {reason}"
    if blas.global_provider("cblas_sgemm"):
        return "in use"
    lib = blas.find()
    if lib is None:
        if not quiet:
            print(f"temper: {blas.HINT}", file=sys.stderr)
        return "none found"
    args = list(sys.orig_argv if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os.execve(sys.executable, [sys.executable, *args[1:]], preload_environ(lib))
    raise AssertionError("unreachable")  # pragma: no cover


def reexec_pytest(config) -> None:
    """For tests/conftest.py's `pytest_configure`: re-exec pytest once with the fast BLAS preloaded.

    pytest's fd-level capture is stopped first so the new process writes to the real terminal."""
    if os.environ.get(MARK) == str(os.getpid()):
        restore_environ()
        return
    if not _started_as_pytest() or skip_reason() or blas.global_provider("cblas_sgemm") or blas.find() is None:
        return
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.stop_global_capturing()
    ensure_fast_blas(quiet=True)


def _started_as_pytest() -> bool:
    """pytest run as a command (`pytest`, `python -m pytest`), not `pytest.main()` inside another program,
    whose command line re-running would be wrong."""
    from pathlib import Path

    first = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    return first.name in ("pytest", "py.test") or (first.name == "__main__.py" and first.parent.name == "pytest")
