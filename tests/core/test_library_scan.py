"""scan: HF cache + user folders + temper's models, deduplicated; folders config; delete; CLI twin."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from temper.cli.main import main
from temper.core.errors import TemperError
from temper.core.library.delete import delete_model
from temper.core.library.folders import add_folder, config_file, folders, remove_folder
from temper.core.library.scan import scan
from temper.core.paths import models_dir


def _fake_hf_cache(root: Path, repo_id: str, model: Path) -> Path:
    """The cache layout huggingface_hub writes: blobs, a snapshot of symlinks, refs/main."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for i, f in enumerate(sorted(model.iterdir())):
        blob = repo / "blobs" / f"blob{i:04d}"
        shutil.copy(f, blob)
        (snapshot / f.name).symlink_to(Path("../../blobs") / blob.name)
    return snapshot


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_llama: Path) -> Path:
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    _fake_hf_cache(cache, "tiny-org/tiny-llama", tiny_llama)
    return cache


def test_scan_finds_all_three_sources_and_dedupes(tmp_path: Path, hf_cache: Path, tiny_llama: Path,
                                                  tiny_gemma4: Path) -> None:
    shutil.copytree(tiny_llama, models_dir() / "mine")
    user = tmp_path / "user-models"
    shutil.copytree(tiny_gemma4, user / "gemma")
    (user / "notes").mkdir()  # not a model: ignored
    add_folder(user)
    start = time.perf_counter()
    found = scan(extra_folders=[user / "gemma", tiny_llama])
    elapsed = time.perf_counter() - start
    by_name = {m.name: m for m in found}
    assert set(by_name) == {"mine", "gemma", "tiny-org/tiny-llama", "tiny-llama"}
    assert by_name["mine"].source == "temper" and by_name["gemma"].source == "folder"
    assert by_name["tiny-org/tiny-llama"].source == "hf-cache"
    assert by_name["tiny-org/tiny-llama"].parameters == by_name["mine"].parameters
    assert all(m.error is None for m in found)
    assert elapsed < 5, f"scan took {elapsed:.1f}s"


def test_hf_cache_dir_follows_hf_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_llama: Path) -> None:
    cache = tmp_path / "elsewhere"
    _fake_hf_cache(cache, "a/b", tiny_llama)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert [m.name for m in scan()] == ["a/b"]


def test_broken_folder_is_listed_with_error(tmp_path: Path, tiny_llama: Path) -> None:
    broken = shutil.copytree(tiny_llama, tmp_path / "lib" / "broken")
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    add_folder(tmp_path / "lib")
    [info] = scan(include_hf_cache=False)
    assert info.error and "truncated" in info.error


def test_folders_config_keeps_comments_and_is_idempotent(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    add_folder(a)
    text = config_file().read_text().replace("models_folders =", "# my note\nmodels_folders =", 1)
    config_file().write_text(text)
    add_folder(b)
    add_folder(a)
    assert folders() == [a.resolve(), b.resolve()]
    assert "# my note" in config_file().read_text()
    assert remove_folder(a) and folders() == [b.resolve()]
    with pytest.raises(TemperError, match="no such folder"):
        add_folder(tmp_path / "missing")


def test_delete_refuses_outside_known_roots(tmp_path: Path, tiny_llama: Path) -> None:
    stray = shutil.copytree(tiny_llama, tmp_path / "stray")
    with pytest.raises(TemperError, match="refusing"):
        delete_model(stray)
    with pytest.raises(TemperError, match="not a model folder"):
        delete_model(tmp_path)
    assert stray.exists()
    mine = shutil.copytree(tiny_llama, models_dir() / "mine")
    assert delete_model(mine) > 0 and not mine.exists()


def test_delete_from_hf_cache_removes_the_repo(hf_cache: Path) -> None:
    [info] = scan()
    delete_model(info.path)
    assert not (hf_cache / "models--tiny-org--tiny-llama").exists()
    assert scan() == []


def test_cli_list_show_delete(tmp_path: Path, tiny_llama: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(tiny_llama, models_dir() / "mine")
    assert main(["library", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["NAME", "ARCH", "PARAMS", "SIZE", "QUANT", "BPW", "VISION", "SOURCE"]
    assert "mine" in out and "32.00" in out
    assert main(["library", "list", "--json", "--filter", "MINE"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["bits_per_weight"] == 32.0 and row["source"] == "temper"
    assert main(["library", "list", "--filter", "nothing-like-this"]) == 0
    assert "no models found" in capsys.readouterr().out
    assert main(["library", "show", "mine"]) == 0
    assert "bits per weight" in capsys.readouterr().out
    assert main(["library", "show", "nope"]) == 2
    assert "no such model" in capsys.readouterr().err
    shutil.copytree(tiny_llama, models_dir() / "mine-2")
    assert main(["library", "show", "min"]) == 2
    assert "matches 2 models" in capsys.readouterr().err
    assert main(["library", "delete", "mine-2", "--yes"]) == 0
    assert main(["library", "delete", "mine", "--yes"]) == 0
    assert not (models_dir() / "mine").exists()


def test_cli_import_gguf_and_list_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI runs MLX on its own (main) thread, as `temper library import` does in a shell."""
    sys.path.insert(0, str(Path(__file__).parent))
    from gguf_tiny import write_gguf
    from temper.core.library.synthetic import train_tokenizer

    train_tokenizer(tmp_path / "tok", vocab_size=300)
    write_gguf(tmp_path / "tiny.Q8_0.gguf", tmp_path / "tok", qtype="Q8_0")
    code = (f"import sys; from temper.cli.main import main; "
            f"sys.exit(main(['library', 'import', {str(tmp_path / 'tiny.Q8_0.gguf')!r}, '--name', 'tiny']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "uniform 8-bit g32" in done.stdout
    assert main(["library", "list", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["name"] == "tiny" and row["quantization"] == "uniform 8-bit g32"


def test_folders_and_output_folder_live_in_settings(tmp_path: Path) -> None:
    from temper.core import paths
    from temper.core import settings as store

    default = paths.models_dir()
    add_folder(tmp_path)
    settings, error = store.load()
    assert error is None and settings.models_folders == [str(tmp_path.resolve())]
    settings.set("output_folder", str(tmp_path / "out"))
    store.save(settings)
    assert paths.models_dir() == tmp_path / "out" != default
    store.settings_path().write_text("output_folder = [not toml")
    assert paths.models_dir() == default  # a broken file: defaults, never a crash
