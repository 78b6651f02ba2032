"""Quantize onto an unlucky disk (issue 16): read-only, full, or killed mid-write. One line, exit 2,
nothing left behind; a half-written folder of a killed run is removed at the next start; verify failures
name the model, not the temporary folder. And one rule for file modes."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from temper.cli.main import main
from temper.core import atomic, partials
from temper.core.chat.store import ChatStore
from temper.core.paths import data_dir

ROOT = os.geteuid() == 0


def _mount(where: Path, *options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if not ROOT or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(where)],
                          capture_output=True)
    return done.returncode == 0


def _umount(where: Path) -> None:
    subprocess.run(["umount", str(where)], capture_output=True)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_read_only_folder_one_line(tmp_path, tiny_llama, capsys):
    target = tmp_path / "ro"
    mounted = _mount(target, "size=4m", "ro")
    if not mounted:
        if ROOT:
            pytest.skip("root without mount: permissions do not stop root")
        target.chmod(0o555)
    try:
        code = main(["quantize", str(tiny_llama), "--recipe", "uniform-4", "-o", str(target / "q4")])
        err = capsys.readouterr().err
        assert code == 2, err
        assert "Traceback" not in err
        assert err.strip().splitlines()[-1] == f"temper: cannot write {target / 'q4'}: {target} is not writable"
        assert _leftovers(target) == []
    finally:
        _umount(target) if mounted else target.chmod(0o755)


def test_full_disk_is_refused_before_writing(tmp_path, tiny_llama, capsys):
    target = tmp_path / "small"
    if not _mount(target, "size=256k"):
        pytest.skip("needs root and tmpfs to make a small disk")
    try:
        code = main(["quantize", str(tiny_llama), "--recipe", "uniform-4", "-o", str(target / "q4")])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, err
        last = err.strip().splitlines()[-1]
        assert "needs about" in last and "MB free" in last, last
        assert _leftovers(target) == []
    finally:
        _umount(target)


def test_full_disk_during_the_write_leaves_nothing(tmp_path, tiny_llama):
    """The disk fills while MLX writes (the room check passed): MLX's "Unable to write" is one line, in a
    real process (it aborted with exit 134 before), and the half-written folder is gone."""
    target = tmp_path / "small"
    if not _mount(target, "size=64k"):
        pytest.skip("needs root and tmpfs to make a small disk")
    script = ("import temper.core.quant.write as w; w.check_room = lambda *a, **k: None\n"
              "from temper.cli.main import main; from temper.core.exit import exit_now\n"
              f"exit_now(main(['quantize', {str(tiny_llama)!r}, '--recipe', 'uniform-4', '-o', "
              f"{str(target / 'q4')!r}]))\n")
    try:
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, HF_HUB_OFFLINE="1"))
        lines = [x for x in proc.stderr.splitlines() if x.strip() and not x.startswith("[")]
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert len(lines) == 1 and lines[0].startswith(f"temper: cannot write {target / 'q4'}"), proc.stderr
        assert _leftovers(target) == []
    finally:
        _umount(target)


def test_enospc_from_the_writer_is_one_line(tmp_path, tiny_llama, capsys, monkeypatch):
    """Without root: the same failure, simulated where MLX writes."""
    import mlx_lm.utils

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(mlx_lm.utils, "save_model", full)
    code = main(["quantize", str(tiny_llama), "--recipe", "uniform-4", "-o", str(tmp_path / "q4")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"temper: cannot write {tmp_path / 'q4'}: No space left on device "
                                            "(nothing was left behind)")
    assert _leftovers(tmp_path) == []


def test_partial_folder_names_its_writer_and_stale_ones_are_cleaned(tmp_path):
    out = tmp_path / "model-q4"
    with atomic.folder(out) as tmp:
        assert f".pid{os.getpid()}@" in tmp.name and tmp in atomic.ACTIVE
        assert partials.stale(tmp_path) == []          # our own, still being written
        (tmp / "x").write_text("x")
    assert out.is_dir() and not atomic.ACTIVE
    dead = _dead_pid()
    left = tmp_path / f".model-q4.pid{dead}@{partials._host()}.abc123.partial"
    left.mkdir()
    (left / "model.safetensors").write_bytes(b"half")
    other_host = tmp_path / f".model-q4.pid{dead}@elsewhere.abc123.partial"
    other_host.mkdir()
    legacy = tmp_path / ".model-q4.abc123.partial"
    legacy.mkdir()
    assert partials.clean(tmp_path) == [left]
    assert not left.exists() and other_host.exists() and legacy.exists() and out.exists()


def test_quantize_and_scan_clean_stale_partials(tmp_path, tiny_llama, capsys):
    from temper.core.library.scan import scan
    from temper.core.paths import models_dir

    dead = _dead_pid()
    stale = tmp_path / f".q4.pid{dead}@{partials._host()}.zz.partial"
    stale.mkdir()
    assert main(["quantize", str(tiny_llama), "--recipe", "uniform-4", "-o", str(tmp_path / "q4"), "--json"]) == 0
    assert not stale.exists()
    models_dir().mkdir(parents=True, exist_ok=True)
    stale2 = models_dir() / f".x.pid{dead}@{partials._host()}.zz.partial"
    stale2.mkdir()
    scan(include_hf_cache=False)
    assert not stale2.exists()


def test_killed_write_is_cleaned_by_the_next_quantize(tmp_path, tiny_llama):
    """SIGKILL mid-write (here: a writer that never finishes) leaves `.q4.pid…partial`; the next run removes it."""
    script = ("import time, temper.core.quant.write as w\n"
              "def slow(*a, **k):\n    print('WRITING', flush=True); time.sleep(600)\n"
              "import mlx_lm.utils; mlx_lm.utils.save_model = slow\n"
              "from temper.cli.main import main\n"
              f"main(['quantize', {str(tiny_llama)!r}, '--recipe', 'uniform-4', '-o', {str(tmp_path / 'q4')!r}])\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        left = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
        assert len(left) == 1 and f".pid{proc.pid}@" in left[0].name
    finally:
        proc.kill()
        proc.wait()
    assert partials.stale(tmp_path) == left
    assert main(["quantize", str(tiny_llama), "--recipe", "uniform-4", "-o", str(tmp_path / "q4"), "--json"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q4"]


def test_verify_failure_names_the_model_not_the_temporary_folder(tmp_path, tiny_llama, monkeypatch, capsys):
    import temper.core.quant.verify as verify_mod

    real = verify_mod.verify

    def damaged(folder, plan=None, **kw):   # the written folder loses a tensor before it is checked
        from corrupt_models import WEIGHTS, read_safetensors, write_safetensors

        header, data = read_safetensors(folder / WEIGHTS)
        header.pop(next(n for n in header if n.endswith("down_proj.scales")))
        write_safetensors(folder / WEIGHTS, header, data)
        return real(folder, plan, **kw)

    monkeypatch.setattr(verify_mod, "verify", damaged)
    out = tmp_path / "q4"
    code = main(["quantize", str(tiny_llama), "--recipe", "uniform-4", "-o", str(out)])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith(f"temper: plain mlx_lm.load fails on {out}:"), err
    assert ".partial" not in err
    assert _leftovers(tmp_path) == []


def test_file_modes(tmp_path, tiny_llama, capsys):
    """Data folder 0700, chat.sqlite and its -wal/-shm 0600; an output model folder follows the umask
    (0755/0644 under 022) throughout, whatever the writers inside used."""
    store = ChatStore()
    conv = store.create("secret")
    store.add(conv.id, "user", "my diary")
    assert stat.S_IMODE(data_dir().stat().st_mode) == 0o700
    for suffix in ("", "-wal", "-shm"):
        file = data_dir() / f"chat.sqlite{suffix}"
        assert file.exists() and stat.S_IMODE(file.stat().st_mode) == 0o600, (suffix, oct(file.stat().st_mode))
    store.close()
    old = os.umask(0o022)
    try:
        out = tmp_path / "q4"
        assert main(["quantize", str(tiny_llama), "--recipe", "uniform-4", "-o", str(out), "--json"]) == 0
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [out, *out.iterdir()]}
    assert modes.pop("q4") == 0o755
    assert set(modes.values()) == {0o644}, modes


def test_old_world_readable_chat_database_is_tightened(tmp_path):
    data_dir().mkdir(parents=True)
    os.chmod(data_dir(), 0o755)
    db = data_dir() / "chat.sqlite"
    ChatStore().close()
    os.chmod(db, 0o644)
    ChatStore().close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600 and stat.S_IMODE(data_dir().stat().st_mode) == 0o700


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
