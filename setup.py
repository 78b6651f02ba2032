"""Maps the top-level folders core/, cli/, tui/, themes/ and profiles/ under the one import name `temper`.

pyproject.toml holds all metadata; this file only computes the package list, which setuptools
cannot express declaratively for a renamed tree.
"""

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
TREES = {"core": "temper.core", "cli": "temper.cli", "tui": "temper.tui", "themes": "temper.themes", "profiles": "temper.profiles"}


def packages() -> tuple[list[str], dict[str, str]]:
    names: list[str] = []
    dirs: dict[str, str] = {}
    for folder, name in TREES.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder)
            full = ".".join([name, *rel.parts])
            names.append(full)
            dirs[full] = init.parent.relative_to(ROOT).as_posix()
    return names, dirs


names, dirs = packages()
setup(packages=names, package_dir=dirs)
