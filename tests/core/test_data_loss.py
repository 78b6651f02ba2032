"""Nothing lost: the two commands that could delete a user's models (issue 16) refuse instead.

Each case failed before the fix: quantize -o an ancestor of the source with --force deleted the source,
`library delete lib/..` deleted the folder above a Library root, and --force wiped a folder of notes."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from temper.cli.main import main
from temper.core.errors import QuantError, TemperError
from temper.core.library.delete import delete_model
from temper.core.library.folders import add_folder
from temper.core.paths import models_dir
from temper.core.quant.output import check_output


def _digest(folder: Path) -> dict[str, str]:
    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(folder.rglob("*")) if f.is_file()}


def test_quantize_into_the_folder_holding_the_source_is_refused(tmp_path, tiny_llama, capsys):
    parent = tmp_path / "D"
    src = shutil.copytree(tiny_llama, parent / "src")
    (parent / "other-notes.txt").write_text("keep me")
    before = _digest(parent)
    code = main(["quantize", str(src), "--recipe", "uniform-4", "-o", str(parent), "--force"])
    err = capsys.readouterr().err
    assert code == 2
    assert "holds the source model" in err and "Traceback" not in err
    assert _digest(parent) == before


@pytest.mark.parametrize("where", ["same", "inside", "ancestor-dotdot"])
def test_output_guard_refuses_every_spelling_of_the_source(tmp_path, tiny_llama, where):
    src = shutil.copytree(tiny_llama, tmp_path / "a" / "src")
    out = {"same": src, "inside": src / "q4", "ancestor-dotdot": src / "x" / ".." / ".."}[where]
    with pytest.raises(QuantError, match="source model"):
        check_output(out, src, force=True)


def test_force_replaces_only_model_folders(tmp_path, tiny_llama):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.txt").write_text("a week of work")
    with pytest.raises(QuantError, match="not a model folder"):
        check_output(notes, tiny_llama, force=True)
    assert (notes / "notes.txt").read_text() == "a week of work"
    with pytest.raises(QuantError, match="already exists"):
        check_output(notes, tiny_llama, force=False)
    model = shutil.copytree(tiny_llama, tmp_path / "old-model")
    said = check_output(model, tiny_llama, force=True)
    assert said is not None and "replacing the model folder" in said and "MB" in said
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "empty folder" in (check_output(empty, tiny_llama, force=True) or "")
    assert check_output(tmp_path / "new", tiny_llama, force=False) is None


def test_cli_force_onto_a_notes_folder_keeps_the_notes(tmp_path, tiny_llama, capsys):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.txt").write_text("a week of work")
    code = main(["quantize", str(tiny_llama), "--recipe", "uniform-4", "-o", str(notes), "--force"])
    assert code == 2 and "not a model folder" in capsys.readouterr().err
    assert (notes / "notes.txt").read_text() == "a week of work"


def test_delete_dotdot_above_a_library_folder_is_refused(tmp_path, tiny_llama, capsys):
    model = shutil.copytree(tiny_llama, tmp_path / "x" / "model")
    lib = model / "lib"
    lib.mkdir()
    add_folder(lib)
    before = _digest(model)
    with pytest.raises(TemperError, match="outside|refusing"):
        delete_model(lib / "..")
    assert main(["library", "delete", str(lib / ".."), "--yes"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "refusing" in err
    assert _digest(model) == before


def test_delete_a_model_that_holds_a_library_folder_is_refused(tmp_path, tiny_llama):
    root = tmp_path / "root"
    root.mkdir()
    add_folder(root)
    model = shutil.copytree(tiny_llama, root / "model")
    (model / "nested").mkdir()
    add_folder(model / "nested")
    with pytest.raises(TemperError, match="holds the Library folder"):
        delete_model(model)
    assert (model / "config.json").is_file()


def test_delete_a_symlink_removes_the_link_not_the_model(tmp_path, tiny_llama):
    real = shutil.copytree(tiny_llama, tmp_path / "elsewhere" / "real")
    link = models_dir() / "linked"
    models_dir().mkdir(parents=True, exist_ok=True)
    link.symlink_to(real, target_is_directory=True)
    before = _digest(real)
    assert delete_model(link) == 0
    assert not link.exists() and not link.is_symlink()
    assert _digest(real) == before
