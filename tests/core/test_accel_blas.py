"""The fast BLAS: found, preloaded by one guarded re-exec, reported, and never a failure when missing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from temper.core.accel import blas, preload

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD is Linux-only")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", preload.MARK, blas.ENV_DISABLE, blas.ENV_LIBRARY)
           and not k.startswith("TEMPER_BLAS_SAVED_")}
    env.update(extra)
    return env


def _temper(*args: str, **env: str) -> subprocess.CompletedProcess:
    # `-m ...main` calls main() with no argv, exactly like the `temper` console script
    return subprocess.run([sys.executable, "-m", "temper.cli.main", *args], capture_output=True,
                          text=True, env=_clean_env(**env), timeout=120)


@linux
def test_suite_runs_on_the_fast_blas_and_it_computes_right(engine) -> None:
    found = blas.find()
    status = blas.blas_status()
    if found is None or os.environ.get(blas.ENV_DISABLE, "") not in ("", "0"):
        pytest.skip("no fast BLAS installed here, or TEMPER_NO_BLAS_PRELOAD is set")
    if not preload._started_as_pytest():
        pytest.skip("pytest.main() inside another program: no re-exec (its command line is not pytest's)")
    assert status.fast and status.path and status.name != "MLX reference BLAS", status

    def run(ctx):
        import mlx.core as mx
        import numpy as np

        a = mx.random.normal((257, 300), key=mx.random.key(1))
        b = mx.random.normal((300, 129), key=mx.random.key(2))
        got = np.array(a @ b)
        want = np.array(a).astype(np.float64) @ np.array(b).astype(np.float64)
        return float(np.abs(got - want).max())

    assert engine.run(run) < 1e-3


@linux
def test_version_reports_the_preloaded_blas() -> None:
    if blas.find() is None:
        pytest.skip("no fast BLAS installed here")
    out = _temper("--version")
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("blas "))
    assert "reference" not in line and ("OpenBLAS" in line or "MKL" in line), out.stdout
    assert "hint" not in out.stdout and "ld.so" not in out.stderr


@linux
def test_disabled_or_missing_blas_gives_a_hint_not_a_failure() -> None:
    out = _temper("--version", TEMPER_NO_BLAS_PRELOAD="1")
    assert out.returncode == 0, out.stderr
    assert "blas MLX reference BLAS" in out.stdout and "TEMPER_NO_BLAS_PRELOAD" in out.stdout
    out = _temper("--version", TEMPER_BLAS="/nonexistent/libblas.so")
    assert out.returncode == 0, out.stderr
    assert "blas MLX reference BLAS" in out.stdout and "hint:" in out.stdout


@linux
def test_children_do_not_inherit_the_preload() -> None:
    """After the re-exec the library stays loaded here, but LD_PRELOAD is back as it was for children."""
    if blas.find() is None:
        pytest.skip("no fast BLAS installed here")
    code = ("import os; from temper.core.accel.preload import ensure_fast_blas; r = ensure_fast_blas(); "
            "from temper.core.accel.blas import blas_status; "
            "print(r, '|', os.environ.get('LD_PRELOAD'), '|', blas_status().fast)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_clean_env(LD_PRELOAD=""), timeout=60)
    assert out.stdout.strip() == "re-executed | None | True", (out.stdout, out.stderr)


def test_guards() -> None:
    env = {preload.MARK: "4242"}
    assert preload.skip_reason(env, {}, pid=4242) == "already re-executed"
    if sys.platform.startswith("linux"):
        assert preload.skip_reason(env, {}, pid=4243) is None  # a child process gets its own chance
        assert preload.skip_reason({}, {"mlx.core": object()}, pid=1) == "MLX is already loaded"
        assert "TEMPER_NO_BLAS_PRELOAD" in preload.skip_reason({blas.ENV_DISABLE: "1"}, {}, pid=1)
        assert preload.skip_reason({blas.ENV_DISABLE: "0"}, {}, pid=1) is None


def test_preload_environment_round_trip(tmp_path) -> None:
    lib = blas.BlasLibrary(tmp_path / "libopenblas.so.0", "system", tmp_path / "support")
    user = {"LD_PRELOAD": "/opt/mine.so", "OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "2097152",
            "OPENBLAS_NUM_THREADS": "3", "PATH": "/bin"}
    env = preload.preload_environ(lib, user, pid=77)
    assert env["LD_PRELOAD"] == f"{lib.path}:/opt/mine.so"
    assert env["LD_LIBRARY_PATH"] == str(tmp_path / "support")
    assert env["OPENBLAS_NUM_THREADS"] == "3"  # the user's choice wins
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and env["OPENBLAS_L2_SIZE"] == "2097152"  # untouched
    assert env[preload.MARK] == "77"
    preload.restore_environ(env)
    assert env["LD_PRELOAD"] == "/opt/mine.so" and "LD_LIBRARY_PATH" not in env
    assert env["OPENBLAS_NUM_THREADS"] == "3"
    assert not any(k.startswith("TEMPER_BLAS_SAVED_") for k in env)
    env = preload.preload_environ(lib, {"PATH": "/bin"}, pid=78)
    assert env["LD_PRELOAD"] == str(lib.path)
    preload.restore_environ(env)
    assert env == {"PATH": "/bin", preload.MARK: "78"}  # children see the environment as it was


def test_thread_count_respects_user_and_is_at_least_one() -> None:
    assert preload.blas_threads({"OPENBLAS_NUM_THREADS": "2"}) is None
    assert preload.blas_threads({"OMP_NUM_THREADS": "1"}) is None
    threads = preload.blas_threads({})
    if threads is not None:
        assert 1 <= int(threads) <= os.cpu_count()


def test_status_line_and_module_cli() -> None:
    status = blas.BlasStatus("OpenBLAS 0.3.31", True, "/x/libopenblas.so.0", "cmeel-openblas", 2, "", None)
    assert status.line() == "OpenBLAS 0.3.31, 2 threads (cmeel-openblas)"
    assert status.as_dict()["threads"] == 2
    out = subprocess.run([sys.executable, "-m", "temper.core.accel.blas", "--preload-path"],
                         capture_output=True, text=True, env=_clean_env(), timeout=60)
    assert out.returncode == 0
    found = blas.find()
    assert out.stdout.strip() == (str(found.path) if found else "")


@linux
def test_gfortran_support_folder_serves_the_wheel_openblas() -> None:
    """Without a system libgfortran.so.5, cmeel-openblas loads with the copy from MLX's wheel."""
    lib = blas._cmeel_openblas()
    support = blas.support_dir()
    if lib is None or support is None:
        pytest.skip("cmeel-openblas or mlx-cpu not installed")
    code = ("import mlx.core as mx; from temper.core.accel.blas import blas_status; s = blas_status(); "
            "g = [l.split()[-1] for l in open('/proc/self/maps') if 'gfortran' in l]; "
            "print(s.fast, any('mlx_cpu.libs' in p for p in g), (mx.ones((64, 64)) @ mx.ones((64, 64)))[0, 0].item())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=_clean_env(LD_PRELOAD=str(lib), LD_LIBRARY_PATH=str(support)))
    assert out.stdout.split() == ["True", "True", "64.0"], (out.stdout, out.stderr)
