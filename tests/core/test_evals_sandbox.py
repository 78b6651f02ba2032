"""The HumanEval sandbox stops what a completion must not do, scores it a failure, and changes nothing
outside its temporary folder."""

from __future__ import annotations

import hashlib
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import pytest
from temper.core.evals.sandbox import Limits, isolation, run_program

FAST = Limits(wall_s=5.0, cpu_s=5, memory_mb=256)


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def precious():
    """A folder outside the sandbox that anyone may read and traverse (0755 folders, 0644 files, like a
    user's own files), so only the sandbox stands between a completion and these files."""
    folder = Path(tempfile.mkdtemp(prefix="temper-precious-"))
    (folder / "sub").mkdir()
    (folder / "a.txt").write_text("keep me")
    (folder / "sub" / "b.txt").write_text("and me")
    for p in [folder, folder / "sub"]:
        p.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_correct_program_passes_and_a_wrong_one_fails():
    assert run_program("def f():\n    return 2\nassert f() == 2\n", FAST).passed
    out = run_program("def f():\n    return 3\nassert f() == 2\n", FAST)
    assert not out.passed and out.status == "failed" and "AssertionError" in out.detail


def test_a_completion_that_loops_forever_is_stopped():
    out = run_program("while True:\n    pass\n", Limits(wall_s=2.0, cpu_s=30))
    assert not out.passed and out.status == "timeout"
    assert out.seconds < 10


def test_a_completion_that_sleeps_forever_is_stopped_by_the_wall_clock():
    out = run_program("import time\ntime.sleep(1000)\n", Limits(wall_s=1.5, cpu_s=30))
    assert not out.passed and out.status == "timeout"


def test_a_completion_that_allocates_without_bound_is_stopped():
    out = run_program("x = []\nwhile True:\n    x.append(bytearray(1 << 24))\n", FAST)
    assert not out.passed
    assert out.status in ("failed", "killed", "timeout")
    assert out.status != "failed" or "MemoryError" in out.detail


def test_a_completion_cannot_open_a_socket():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(6)
    port = server.getsockname()[1]
    got: list[object] = []

    def accept() -> None:
        try:
            got.append(server.accept())
        except OSError:
            pass

    t = threading.Thread(target=accept)
    t.start()
    for src in (f"import socket\ns = socket.socket()\ns.connect(('127.0.0.1', {port}))\n",
                f"import _socket\ns = _socket.socket()\ns.connect(('127.0.0.1', {port}))\n",
                f"import socket\nsocket.create_connection(('127.0.0.1', {port}))\n"):
        out = run_program(src, FAST)
        assert not out.passed, src
    t.join()
    server.close()
    assert got == []   # nothing reached the listener


def test_a_completion_that_deletes_files_outside_its_folder_changes_nothing(precious: Path):
    before = snapshot(precious)
    attempts = [
        f"import shutil\nshutil.rmtree({str(precious)!r})\n",
        f"import os\nos.remove({str(precious / 'a.txt')!r})\n",
        f"import os\nos.unlink({str(precious / 'sub' / 'b.txt')!r})\n",
        f"open({str(precious / 'a.txt')!r}, 'w').write('gone')\n",
        f"import pathlib\npathlib.Path({str(precious / 'a.txt')!r}).unlink()\n",
        f"import subprocess\nsubprocess.run(['rm', '-rf', {str(precious)!r}])\n",
        f"import importlib, os\nimportlib.reload(os)\nos.remove({str(precious / 'a.txt')!r})\n",
    ]
    iso = isolation()
    for src in attempts:
        out = run_program(src, FAST)
        if iso.uid is None and "reload" in src:
            continue   # without a user to drop to, only the guard stands: a reload undoes it
        assert not out.passed, src
        assert snapshot(precious) == before, src
    assert snapshot(precious) == before


def test_the_program_runs_in_its_own_temporary_folder():
    out = run_program("import os, pathlib\nassert os.getcwd() == os.environ['HOME']\n"
                      "assert pathlib.Path('program.py').is_file()\n"
                      "open('scratch.txt', 'w').write('ok')\n", FAST)
    assert out.passed, out.detail
