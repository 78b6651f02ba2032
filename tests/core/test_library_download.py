"""Hub search and download against a local fake Hub: progress, cancel within a file, resume, scan."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_hub import FakeHub
from temper.core.errors import JobCancelled, TemperError
from temper.core.library import hub
from temper.core.library.scan import scan


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_llama: Path):
    import huggingface_hub.constants as constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with FakeHub("org/tiny-llama-mlx", tiny_llama, pad_to=24 << 20, chunk_delay=0.01) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def test_search_returns_hub_models(fake_hub: FakeHub) -> None:
    [found] = hub.search("tiny-llama")
    assert found.id == "org/tiny-llama-mlx" and found.downloads == 1234 and found.is_mlx
    assert hub.search("no-such-thing") == []
    with pytest.raises(TemperError, match="type part of a model name"):
        hub.search("  ")


def test_download_reports_progress_and_lands_in_the_library(fake_hub: FakeHub) -> None:
    seen: list[tuple[int, int, str]] = []
    path = hub.download("org/tiny-llama-mlx", progress=lambda d, t, f: seen.append((d, t, f)))
    total = sum(len(v) for v in fake_hub.files.values())
    assert seen[-1][:2] == (total, total)
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)  # monotonic
    assert sum(1 for _, _, f in seen if f == "padding.safetensors") > 2  # several updates inside one file
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    [info] = scan()
    assert info.name == "org/tiny-llama-mlx" and info.source == "hf-cache"


def test_cancel_inside_a_file_then_resume(fake_hub: FakeHub) -> None:
    state = {"cancel": False}

    def progress(done: int, total: int, name: str) -> None:
        if name == "padding.safetensors" and done < total:
            state["cancel"] = True

    with pytest.raises(JobCancelled):
        hub.download("org/tiny-llama-mlx", progress=progress, cancelled=lambda: state["cancel"])
    extra_gets = [r for r in fake_hub.requests if r.startswith("GET") and r.endswith("padding.safetensors")]
    assert len(extra_gets) == 1
    path = hub.download("org/tiny-llama-mlx")
    assert (path / "padding.safetensors").stat().st_size == 24 << 20


def test_missing_repo_is_one_clear_line(fake_hub: FakeHub) -> None:
    with pytest.raises(TemperError) as info:
        hub.download("org/missing")
    assert "org/missing" in str(info.value) and "\n" not in str(info.value)


def test_search_asks_for_mlx_repos_unless_told_otherwise(fake_hub: FakeHub) -> None:
    hub.search("tiny")
    hub.search("tiny", mlx_only=False)
    searches = [r for r in fake_hub.requests if r.startswith("GET /api/models?")]
    assert "filter=mlx" in searches[0] and "filter=mlx" not in searches[1]
