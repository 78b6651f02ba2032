"""Issue 16's matrix: every command that opens a model × every corrupt, hostile or unlucky model folder.

Each cell must answer in exactly one line on stderr (naming the file or folder and the problem), exit 2,
print no traceback, write nothing, and leave the input byte for byte as it was. Cells that aborted the
process before the fix (exit 134, "terminate called without an active exception") run in a subprocess,
so an abort fails the test instead of killing the test run."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from corrupt_models import CORRUPT
from temper.cli.main import main

COMMANDS = ("library-show", "chat", "bench", "sensitivity", "quantize", "eval-base", "eval-quant")

# library show reads headers only: what the architecture needs tensor by tensor is known once the weights
# are opened (mlx-lm's strict load), which every command that uses the model does.
NOT_APPLICABLE = {("missing-tensor", "library-show")}
# Cells that aborted (exit 134) before the fix: run out of process.
ABORTED_BEFORE = {("header-dtype", "quantize"), ("header-dtype", "eval-base"), ("header-dtype", "eval-quant"),
                  ("empty", "eval-quant"), ("negative-layers", "eval-quant")}
# What each cell's line must mention (the file or folder at fault).
NAMES = {"empty": "empty", "dotdot": "dotdot", "bad-json": "config.json", "config-not-object": "config.json",
         "wrong-hidden-size": "config.json", "negative-layers": "config.json",
         "index-escape": "model.safetensors.index.json", "remote-code": "tiny-llama",
         "remote-tokenizer": "tokenizer_config.json", "missing-tensor": "tiny-llama"}


def argv(command: str, model: Path, good: Path, work: Path) -> list[str]:
    return {
        "library-show": ["library", "show", str(model)],
        "chat": ["chat", str(model), "--prompt", "hi", "--no-save", "--max-tokens", "4"],
        "bench": ["bench", str(model), "--pp", "8", "--tg", "2", "-n", "1", "--no-copy-test", "--no-warmup"],
        "sensitivity": ["sensitivity", str(model), "--mode", "fast", "--samples", "2", "--seq-len", "16",
                        "--out", str(work / "sens.json")],
        "quantize": ["quantize", str(model), "--recipe", "uniform-4", "-o", str(work / "out")],
        "eval-base": ["eval", str(model), str(good), "--chunks", "2", "--chunk-len", "16"],
        "eval-quant": ["eval", str(good), str(model), "--chunks", "2", "--chunk-len", "16"],
    }[command]


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file under `roots` (links not followed) with its sha256; a link records its target."""
    out: dict[str, str] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                if path.is_symlink():
                    out[str(path)] = "-> " + os.readlink(path)
                elif path.is_file():
                    out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def corrupt_root(tmp_path_factory: pytest.TempPathFactory, tiny_llama: Path) -> Path:
    root = tmp_path_factory.mktemp("corrupt")
    for name, build in CORRUPT.items():
        (root / name).mkdir()
        target = build(tiny_llama, root / name)
        (root / name / "TARGET").write_text(str(target))
    return root


CELLS = [(i, c) for i in CORRUPT for c in COMMANDS if (i, c) not in NOT_APPLICABLE]


@pytest.mark.parametrize(("corrupt", "command"), CELLS, ids=[f"{i}-{c}" for i, c in CELLS])
def test_one_line_exit_2_nothing_written(corrupt, command, corrupt_root, tiny_llama, tmp_path, capsys,
                                         _temper_home):
    model = Path((corrupt_root / corrupt / "TARGET").read_text())
    work = tmp_path / "work"
    work.mkdir()
    args = argv(command, model, tiny_llama, work)
    before = snapshot(corrupt_root / corrupt, tiny_llama, work, _temper_home)
    if (corrupt, command) in ABORTED_BEFORE:
        env = dict(os.environ, TEMPER_HOME=str(_temper_home), HF_HUB_OFFLINE="1")
        proc = subprocess.run([sys.executable, "-m", "temper.cli.main", *args], capture_output=True, text=True,
                              env=env, timeout=300)
        code, err = proc.returncode, proc.stderr
    else:
        code = main(args)
        err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("temper: ")
    assert NAMES.get(corrupt, "model.safetensors") in lines[0], lines[0]
    assert snapshot(corrupt_root / corrupt, tiny_llama, work, _temper_home) == before


def test_matrix_covers_every_input_and_command():
    """The counts the issue's closing note quotes: every cell runs except the one named above."""
    assert len(CORRUPT) == 16 and len(COMMANDS) == 7
    assert len(CELLS) == len(CORRUPT) * len(COMMANDS) - len(NOT_APPLICABLE)
