"""The wheel maps core/ and tui/ under `temper`, ships themes/profiles, and installs nothing bare."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (whl,) = out.glob("temper-*.whl")
    return whl


def test_wheel_has_no_bare_top_level_packages(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"temper"}
    assert "temper/core/engine/thread.py" in names
    assert "temper/tui/app.py" in names


def test_wheel_ships_themes_and_profiles_as_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for folder in ("themes", "profiles"):
        shipped = sorted(p.name for p in (ROOT / folder).glob("*.toml"))
        in_wheel = sorted(n.rsplit("/", 1)[1] for n in names if n.startswith(f"temper/{folder}/") and n.endswith(".toml"))
        assert in_wheel == shipped


def test_wheel_installs_into_a_fresh_venv_and_imports(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False, system_site_packages=False)
    python = env_dir / "bin" / "python"
    # Install the wheel alone (no dependencies: nothing is downloaded); core's package root is stdlib-only.
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    zipfile.ZipFile(wheel).extractall(site)
    out = subprocess.run(
        [str(python), "-c", "import temper.core, temper.core.errors, temper.themes; print(temper.core.__version__)"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    assert not (Path(site) / "core").exists() and not (Path(site) / "tui").exists()
