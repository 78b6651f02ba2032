"""The `temper` entry point keeps PyTorch out of the process: transformers would import it for nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from temper.core.startup import ENV, keep_torch_out


def test_marks_torch_absent_unless_loaded_or_asked_for() -> None:
    modules: dict[str, object] = {}
    assert keep_torch_out(modules, {}) and modules == {"torch": None}
    loaded = {"torch": object()}
    assert not keep_torch_out(loaded, {}) and loaded["torch"] is not None     # too late: leave it
    assert not keep_torch_out(modules := {}, {ENV: "1"}) and modules == {}


def _fake_torch(root: Path) -> None:
    """A `torch` that transformers takes for PyTorch 2.9 and that says when it is imported."""
    (root / "torch").mkdir()
    (root / "torch" / "__init__.py").write_text(
        "import os\nopen(os.environ['TORCH_MARK'], 'w').write('imported')\n__version__ = '2.9.0'\n"
        "raise ImportError('fake torch: imported')\n")
    info = root / "torch-2.9.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.9.0\n")
    (info / "RECORD").write_text("")


def _load_tokenizer_stack(root: Path, mark: Path, keep_out: bool) -> subprocess.CompletedProcess:
    code = ("from temper.core.startup import keep_torch_out\n"
            f"{'keep_torch_out()' if keep_out else 'pass'}\n"
            "import mlx_lm.utils\n"
            "from transformers.utils import is_torch_available\n"
            "print('torch available:', is_torch_available())\n")
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "TORCH_MARK": str(mark)}
    env.pop(ENV, None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


def test_mlx_lm_loads_its_tokenizers_without_importing_an_installed_torch(tmp_path: Path) -> None:
    root = tmp_path / "site"
    root.mkdir()
    _fake_torch(root)
    kept, loaded = tmp_path / "kept", tmp_path / "loaded"
    out = _load_tokenizer_stack(root, kept, keep_out=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "torch available: False" in out.stdout and not kept.exists()
    # the control: without it, transformers finds this torch and imports it (here it then fails, by design)
    _load_tokenizer_stack(root, loaded, keep_out=False)
    assert loaded.exists()
