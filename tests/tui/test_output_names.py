"""`temper quantize` and the Quantize tab name a quantization's default output folder with one core rule
(core.quant.request.default_output), from the model however it was given: a folder (relative, with a
trailing slash), a Hub id in the local cache, or the cache's snapshot folder the Library lists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from temper.cli.main import main
from temper.core.quant.request import QuantRequest
from temper.tui.engine_quant_client import EngineQuantClient

HASH = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def cli_engine(engine, monkeypatch):
    import temper.core.engine.thread as thread

    monkeypatch.setattr(thread, "_default", engine)
    return engine


@pytest.fixture
def hub_cache(tmp_path: Path, tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tiny_llama as the cached Hub repo someone/Tiny-Chat (its snapshot folder returned)."""
    import huggingface_hub.constants as constants

    repo = tmp_path / "hf" / "models--someone--Tiny-Chat"
    snapshot = repo / "snapshots" / HASH
    shutil.copytree(tiny_llama, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(HASH)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return snapshot


def test_the_cli_and_the_app_name_the_output_alike(cli_engine, tiny_llama: Path, hub_cache: Path, tmp_path: Path,
                                                   capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tiny_llama.parent)
    app = EngineQuantClient(engine=None)
    spellings = {str(tiny_llama): "tiny-llama", f"{tiny_llama}/": "tiny-llama", tiny_llama.name: "tiny-llama",
                 f"./{tiny_llama.name}/": "tiny-llama", "someone/Tiny-Chat": "Tiny-Chat",
                 str(hub_cache): "Tiny-Chat"}
    for model, name in spellings.items():
        assert main(["quantize", model, "--recipe", "uniform-4", "--no-eval", "--samples", "1", "--seq-len", "16",
                     "--force", "--json"]) == 0, model
        cli_out = Path(json.loads(capsys.readouterr().out)["out"])
        app_out = Path(app.default_output(QuantRequest(model=model, recipe="uniform-4")))
        assert cli_out == app_out, model
        assert cli_out.name == f"{name}-temper-uniform-4", model
        assert (cli_out / "config.json").is_file()
