"""`temper --profile FILE <command>` reaches every subcommand: before, it was parsed and never used (and a
missing file passed). Each command takes the profile's section as its defaults; flags still win."""

from __future__ import annotations

import pytest
from temper.cli.main import build_parser, load_profile, main
from temper.core.profiles import loads

PROFILE = """
version = 1
[sampling]
temperature = 0.0
max_tokens = 3
[chat]
system_prompt = "Be terse."
num_draft_tokens = 5
kv_bits = 0
[quantize]
bits = [4, 8]
group_sizes = [64]
samples = 4
seq_len = 32
sensitivity_mode = "exact"
evaluation = "held.txt"
[bench]
prompt_lengths = [64]
gen_lengths = [8]
repetitions = 1
batch_sizes = [2]
kv_bits = 8
"""


def parsed(*argv: str):
    args = build_parser().parse_args(list(argv))
    args.loaded_profile = loads(PROFILE)
    return args


def test_a_missing_or_broken_profile_is_one_line_exit_2(tmp_path, capsys) -> None:
    assert main(["--profile", str(tmp_path / "nope.toml"), "profiles", "list"]) == 2
    assert "no such profile file" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[quantize]\nbits = [7]\n")
    assert main(["--profile", str(bad), "bench", "m"]) == 2
    assert capsys.readouterr().err.startswith(f"temper: {bad}:2: quantize.bits: item 1: must be one of")
    assert load_profile(None) is None


def test_bench_takes_the_profile_bench_section() -> None:
    from temper.cli.bench import config_from_args

    config = config_from_args(parsed("bench", "m"))
    assert (config.pp, config.tg, config.n, config.batch) == ([64], [8], 1, [2])
    assert config_from_args(parsed("bench", "m", "--pp", "16", "-n", "2")).pp == [16]


def test_kv_bits_zero_is_accepted_by_profiles_and_flags() -> None:
    """kv_bits = 0 is accepted everywhere the setting is (profile [chat] and [bench], --kv-bits); the profile's
    value holds unless a flag is given. (0 = the float cache even over a kv_config.json: test_gemma4_kv.)"""
    from temper.cli.bench import config_from_args
    from temper.core.chat.settings import ChatSettings
    from temper.core.errors import TemperError

    assert config_from_args(parsed("bench", "m")).kv_bits == 8                      # [bench] kv_bits = 8
    assert config_from_args(parsed("bench", "m", "--kv-bits", "0")).kv_bits == 0    # the flag wins
    _, chat = ChatSettings.from_profile(loads(PROFILE))
    assert chat.kv_bits == 0
    with pytest.raises(TemperError, match="kv_bits: must be one of 0, 4, 8, got 3"):
        ChatSettings(kv_bits=3).validate()


def test_sensitivity_takes_the_profile_grid_and_calibration() -> None:
    from temper.cli.sensitivity import settings_from

    args = parsed("sensitivity", "m")
    s = settings_from(args, args.loaded_profile)
    assert ([c.key for c in s.candidates()], s.samples, s.seq_len, s.sensitivity_mode) == \
        (["affine:4b:g64", "affine:8b:g64"], 4, 32, "exact")
    args = parsed("sensitivity", "m", "--mode", "fast", "--bits", "2")
    assert settings_from(args, args.loaded_profile).sensitivity_mode == "fast"


def test_eval_takes_the_profile_evaluation_text_and_lengths() -> None:
    from temper.cli.eval import held_out

    args = parsed("eval", "base", "quant")
    assert held_out(args, args.loaded_profile) == ("held.txt", 4, 32)
    args = parsed("eval", "base", "quant", "--chunks", "2", "--chunk-len", "16", "--text", "mine.txt")
    assert held_out(args, args.loaded_profile)[1:] == (2, 16)
    assert held_out(parsed("eval", "b", "q"), None) == (None, 16, 256)


def test_quantize_takes_the_profile_quantize_section() -> None:
    from temper.cli.quantize import request_from

    args = parsed("quantize", "m")
    req = request_from(args, args.loaded_profile)
    assert (req.bits, req.group_sizes, req.samples, req.seq_len) == ([4, 8], [64], 4, 32)


def test_chat_takes_the_profile_sampling_and_chat_sections(tiny_llama, tmp_path, capsys) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(PROFILE)
    assert main(["--profile", str(profile), "chat", str(tiny_llama), "--prompt", "hello"]) == 0
    err = capsys.readouterr().err
    assert "3 tokens" in err                               # [sampling] max_tokens = 3
    from temper.core.chat.store import ChatStore

    (conv,) = ChatStore().list()
    assert conv.system_prompt == "Be terse." and conv.settings["num_draft_tokens"] == 5
    assert conv.settings["sampling"]["temperature"] == 0.0


@pytest.mark.parametrize("section", ["sampling", "chat", "quantize", "bench"])
def test_profile_defaults_are_the_engines(section) -> None:
    """One set of defaults: a profile key left out means what the engine does without a profile."""
    from temper.core.bench.settings import BenchSettings
    from temper.core.chat.settings import ChatProfile
    from temper.core.engine.sampling import SamplingSettings
    from temper.core.profiles import Profile
    from temper.core.quant.request import QuantSettings

    model = {"sampling": SamplingSettings, "chat": ChatProfile, "quantize": QuantSettings,
             "bench": BenchSettings}[section]()
    assert Profile.default().effective(section) == model.to_dict()
