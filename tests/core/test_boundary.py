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


def test_command_line_parser_loads_no_model_stack() -> None:
    """`temper -h`, `temper library list`... build the parser from every command module: none of them may load
    mlx-lm (and through it transformers, and torch where it is installed: 9 s on the GPU machine) to do so."""
    code = (
        "import sys\n"
        "from temper.cli.main import build_parser\n"
        "build_parser()\n"
        "print(','.join(sorted(m for m in ('mlx_lm', 'transformers', 'torch') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"building the parser imports {out.stdout.strip()}"
