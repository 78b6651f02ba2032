"""Shared fixtures. Tests never download: models are built offline into a session temp folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Run the suite on a fast BLAS: re-exec pytest once with it preloaded (temper.core.accel.preload)."""
    from temper.core.accel.preload import reexec_pytest

    reexec_pytest(config)


@pytest.fixture(autouse=True)
def _temper_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own TEMPER_HOME: no test reads or writes the user's real config or data."""
    home = tmp_path_factory.mktemp("temper-home")
    monkeypatch.setenv("TEMPER_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def engine():
    from temper.core.engine import Engine

    eng = Engine(name="temper-test-engine")
    yield eng
    eng.shutdown()


def _build(root: Path, arch: str) -> Path:
    from temper.core.library.synthetic import build_model

    out = root / f"tiny-{arch}"
    if not (out / "config.json").exists():
        build_model(out, arch)
    return out


@pytest.fixture(scope="session")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_llama(models_root: Path, engine) -> Path:
    """A random-weight llama (2 layers, hidden 64, vocab 512) with a trained BPE tokenizer."""
    return engine.run(lambda ctx: _build(models_root, "llama"))


@pytest.fixture(scope="session")
def tiny_gemma4(models_root: Path, engine) -> Path:
    """A random-weight gemma4_text with sliding and full attention layers."""
    return engine.run(lambda ctx: _build(models_root, "gemma4_text"))


TRAINED_TINY = Path(__file__).parent / "fixtures" / "trained-tiny"


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed trained llama (hidden 128, 4 blocks, vocab 1024; tests/fixtures/train_tiny.py),
    copied to a session temp folder so no test can modify the committed one."""
    import shutil

    out = tmp_path_factory.mktemp("trained") / "trained-tiny"
    shutil.copytree(TRAINED_TINY, out)
    return out


def pytest_report_header(config: pytest.Config) -> str:
    from temper.core.accel.blas import blas_status

    return f"TEMPER_HOME per test; HF offline; BLAS: {blas_status().line()}"


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without native teardown once pytest is done (MLX can abort at exit: core/exit.py)."""
    from temper.core.accel.preload import _started_as_pytest
    from temper.core.exit import exit_now

    if os.environ.get("TEMPER_PYTEST_NATIVE_EXIT") or not hasattr(config, "_temper_exitstatus"):
        return
    if not _started_as_pytest():  # pytest.main() inside another program: not ours to end
        return

    exit_now(int(config._temper_exitstatus))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._temper_exitstatus = exitstatus
