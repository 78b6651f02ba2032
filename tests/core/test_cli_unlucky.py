"""Unlucky settings, profiles and arguments in the CLI (issue 16): each says what is wrong in one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from temper.cli.main import main
from temper.core.paths import config_dir


def _write_settings(text: str | bytes) -> None:
    config_dir().mkdir(parents=True, exist_ok=True)
    path = config_dir() / "settings.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


@pytest.mark.parametrize(("content", "where"), [
    ('theme = "x"\nrefresh_rate = "fast"\n', "settings.toml:2: refresh_rate"),
    (b"\xff\xfe\x00garbage\x81", "settings.toml:1: syntax"),
    ("models_folders = [" + "'/x', " * 400_000 + "\n", "settings.toml:1"),
], ids=["wrong-type", "garbage-bytes", "10mb-unterminated"])
def test_broken_settings_are_said_once_with_file_and_line(content, where, capsys):
    _write_settings(content)
    assert main(["profiles", "list"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and where in err[0] and "using default settings" in err[0], err
    assert (config_dir() / "settings.toml").read_bytes() == (content if isinstance(content, bytes) else content.encode())


def test_good_settings_say_nothing(capsys):
    _write_settings('theme = "temper-dark"\n')
    assert main(["profiles", "list"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("kind", ["missing", "broken"])
def test_profile_file_that_does_not_load_is_one_line(kind, tmp_path, capsys):
    path = tmp_path / "p.toml"
    if kind == "broken":
        path.write_text("[sampling\ntemperature = 'hot'\n")
    code = main(["--profile", str(path), "profiles", "list"])
    err = capsys.readouterr()
    lines = err.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and str(path) in lines[0] and err.out == "", err


def test_profiles_list_keeps_long_descriptions_to_one_short_line(capsys):
    from temper.core.profiles import user_dir

    user_dir().mkdir(parents=True, exist_ok=True)
    (user_dir() / "huge.toml").write_text('version = 1\ndescription = """' + "very long words\n" * 700_000 + '"""\n')
    assert main(["profiles", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    huge = [line for line in out if line.startswith("huge")]
    assert len(huge) == 1 and len(huge[0]) < 140 and huge[0].endswith("…"), huge


def test_bench_prompt_beyond_the_context_is_refused_before_loading(tiny_llama, capsys, monkeypatch):
    import temper.cli.bench as bench_cli

    monkeypatch.setattr(bench_cli, "bench", lambda *a, **k: pytest.fail("ran the benchmark"))
    limit = json.loads((tiny_llama / "config.json").read_text())["max_position_embeddings"]
    code = main(["bench", str(tiny_llama), "--pp", "100000", "--tg", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0] == (f"temper: --pp 100000 + --tg 2 = 100002 tokens, but tiny-llama holds {limit} tokens of "
                      f"context: choose --pp and --tg summing to at most {limit}")
    assert main(["bench", str(tiny_llama), "--pp", str(limit - 1), "--tg", "2", "--batch", "2"]) == 2


def test_no_sequence_length_warning_in_chat(tiny_llama, tmp_path, _temper_home):
    """A tokenizer_config whose model_max_length is shorter than the conversation: transformers warned on
    stderr in the middle of the chat output. (A real process: transformers' log handler keeps the stderr it
    first saw, which pytest's capture hides.)"""
    model = shutil.copytree(tiny_llama, tmp_path / "m")
    tok = json.loads((model / "tokenizer_config.json").read_text())
    tok["model_max_length"] = 8
    (model / "tokenizer_config.json").write_text(json.dumps(tok))
    proc = subprocess.run([sys.executable, "-m", "temper.cli.main", "chat", str(model), "--prompt",
                           "tell me a long story about tensors " * 6, "--no-save", "--max-tokens", "3"],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TEMPER_HOME=str(_temper_home), HF_HUB_OFFLINE="1"))
    assert proc.returncode == 0, proc.stderr
    assert "sequence length" not in proc.stdout + proc.stderr


def test_an_unexpected_error_is_one_line_and_the_traceback_on_request(monkeypatch, capsys):
    import temper.cli.profiles as profiles_cli

    def boom(args):
        raise KeyError("surprise")

    monkeypatch.setattr(profiles_cli, "list_profiles", lambda: boom(None))
    assert main(["profiles", "list"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["temper: unexpected error: KeyError: 'surprise' (TEMPER_DEBUG=1 shows the traceback)"]
    monkeypatch.setenv("TEMPER_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["profiles", "list"])


def test_an_os_error_is_one_line_exit_2(monkeypatch, capsys):
    import errno

    import temper.cli.profiles as profiles_cli

    def denied():
        raise PermissionError(errno.EACCES, "Permission denied", "/some/file")

    monkeypatch.setattr(profiles_cli, "list_profiles", denied)
    assert main(["profiles", "list"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["temper: Permission denied: /some/file"]


def test_corrupt_chat_database_is_one_line(capsys):
    from temper.core.paths import data_dir

    data_dir().mkdir(parents=True)
    (data_dir() / "chat.sqlite").write_bytes(os.urandom(5000))
    assert main(["chat", "--list"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "chat.sqlite is not a readable chat database" in err[0]
