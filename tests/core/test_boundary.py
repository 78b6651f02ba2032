"""core/ is headless: importing any core module must not pull in textual or rich."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest
import temper.core


def _core_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(temper.core.__path__, "temper.core."))


def test_core_has_modules() -> None:
    assert "temper.core.engine.thread" in _core_modules()


@pytest.mark.parametrize("module", _core_modules())
def test_core_module_does_not_import_ui(module: str) -> None:
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()}"


def test_tui_holds_no_mlx_imports() -> None:
    """tui/ talks to the engine; it never imports mlx or mlx_lm itself."""
    from pathlib import Path

    import temper.tui

    offenders = []
    for path in Path(temper.tui.__path__[0]).rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import mlx", "from mlx")):
                offenders.append(f"{path.name}: {stripped}")
    assert offenders == []
