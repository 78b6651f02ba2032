from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from temper.core.engine.loader import load, resolve, validate
from temper.core.errors import ModelLoadError


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_loads_both_fixture_architectures(engine, tiny_llama: Path, tiny_gemma4: Path) -> None:
    for path in (tiny_llama, tiny_gemma4):
        lm = engine.run(lambda ctx, p=path: load(p), timeout=120)
        assert lm.config["model_type"] in {"llama", "gemma4_text"}
        assert lm.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)


def test_not_a_model_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match="not a model folder"):
        validate(tmp_path)


def test_missing_config(tmp_path: Path, tiny_llama: Path) -> None:
    folder = _copy(tiny_llama, tmp_path / "m")
    (folder / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="no config.json"):
        validate(folder)


def test_unknown_architecture(tmp_path: Path, tiny_llama: Path) -> None:
    folder = _copy(tiny_llama, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "no_such_arch"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="'no_such_arch' is not supported"):
        validate(folder)


def test_missing_safetensors(tmp_path: Path, tiny_llama: Path) -> None:
    folder = _copy(tiny_llama, tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no model\\*.safetensors"):
        validate(folder)


def test_truncated_safetensors(tmp_path: Path, tiny_llama: Path) -> None:
    folder = _copy(tiny_llama, tmp_path / "m")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated"):
        validate(folder)


def test_corrupt_config_json(tmp_path: Path, tiny_llama: Path) -> None:
    folder = _copy(tiny_llama, tmp_path / "m")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        validate(folder)


def test_hub_id_not_in_cache_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache"):
        resolve("someone/not-here")


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such folder"):
        resolve(tmp_path / "absent")


def test_a_library_name_resolves_to_its_folder(tiny_llama: Path) -> None:
    """`temper chat NAME`: the name the Library shows (or a unique prefix of it) finds the folder."""
    from temper.core.paths import models_dir

    folder = _copy(tiny_llama, models_dir() / "tiny-llama-q4")
    _copy(tiny_llama, models_dir() / "tiny-llama-q8")
    assert resolve("tiny-llama-q4") == folder
    with pytest.raises(ModelLoadError, match="matches 2 models"):
        resolve("tiny-llama")
    with pytest.raises(ModelLoadError, match="no such folder"):
        resolve("no-such-model")
