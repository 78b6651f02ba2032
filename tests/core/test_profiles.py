"""Profiles: strict validation with file:line errors, round-trips, migration, store, diff, CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from temper.cli.main import main
from temper.core.errors import ProfileError
from temper.core.profiles import (
    Profile,
    diff,
    list_profiles,
    load,
    load_file,
    load_or_default,
    loads,
    save,
    shipped_dir,
    user_dir,
)

COMMENTED = """\
# my profile: comments, blank lines and odd spacing must survive a save
version = 1
description = "mine"   # trailing comment

[sampling]
# how hot
temperature   =   0.3
top_k = 40  # keep it tight

[chat]
system_prompt = '''
Be brief.
'''
reasoning_effort = "low"
"""


def error_of(text: str) -> str:
    with pytest.raises(ProfileError) as info:
        loads(text, file="p.toml")
    return str(info.value)


# -- each kind of validation error names file, line and key ---------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[sampling]\ntemprature = 0.5\n", r"^p\.toml:2: sampling\.temprature: unknown key"),
        ("version = 1\n\n[sampling]\ntemperature = 'hot'\n", r"^p\.toml:4: sampling\.temperature: expected a number, got a string"),
        ("[sampling]\ntop_k = 1.5\n", r"^p\.toml:2: sampling\.top_k: expected an integer, got a number"),
        ("[sampling]\ntop_k = true\n", r"^p\.toml:2: sampling\.top_k: expected an integer, got a boolean"),
        ("[sampling]\ntop_p = 1.5\n", r"^p\.toml:2: sampling\.top_p: must be at most 1, got 1\.5"),
        ("[sampling]\nmax_tokens = 0\n", r"^p\.toml:2: sampling\.max_tokens: must be at least 1, got 0"),
        ("[chat]\nreasoning_effort = 'max'\n", r"^p\.toml:2: chat\.reasoning_effort: must be one of none, low, medium, high"),
        ("[quantize]\nbits = [4, 9]\n", r"^p\.toml:2: quantize\.bits: item 2: must be one of 2, 3, 4, 5, 6, 8, got 9"),
        # the same rule as the core's: a width or group size the core cannot run is refused at load
        ("[quantize]\nbits = [7]\n", r"^p\.toml:2: quantize\.bits: item 1: must be one of 2, 3, 4, 5, 6, 8, got 7"),
        ("[quantize]\ngroup_sizes = [16]\n", r"^p\.toml:2: quantize\.group_sizes: item 1: must be one of 32, 64, 128"),
        ("[quantize]\nrecipe = 'q4'\n", r"^p\.toml:2: quantize\.recipe: unknown recipe 'q4'"),
        ("[quantize]\nrecipe = 'uniform-4'\nbits = [4]\n", r"^p\.toml:1: quantize: recipe uniform-4 is a fixed map"),
        ("[quantize]\nmodes = 'affine'\n", r"^p\.toml:2: quantize\.modes: expected an array, got a string"),
        ("[quantize]\nawq = 1\n", r"^p\.toml:2: quantize\.awq: expected true or false, got an integer"),
        ("sampling = 3\n", r"^p\.toml:1: sampling: expected a table \[sampling\], got an integer"),
        ("[extras]\nx = 1\n", r"^p\.toml:1: extras: unknown key \(known here: version, description, sampling"),
        ("[sampling]\ntemperature = 0.5\n[sampling.inner]\n", r"^p\.toml:3: sampling\.inner: unknown key"),
        ("[bench]\nrepetitions = 1979-05-27\n", r"^p\.toml:2: bench\.repetitions: expected an integer, got a date/time"),
        ("version = 'one'\n", r"^p\.toml:1: version: expected an integer, got a string"),
        ("version = 7\n", r"^p\.toml:1: version: 7 is newer than this temper understands"),
        ("[sampling\n", r"^p\.toml:1: syntax: "),
        ("a = 1\n\nb = = 2\n", r"^p\.toml:3: syntax: "),
    ],
)
def test_validation_errors_name_file_line_and_key(text: str, expected: str) -> None:
    assert re.search(expected, error_of(text)), error_of(text)


def test_line_is_found_inside_the_right_table() -> None:
    text = "[chat]\nseed = 1\n\n[sampling]\ntemperature = 0.1\nseed = 'x'\n"
    message = error_of(text)
    # chat.seed (line 2) is unknown and comes first; sampling.seed (line 6) is counted
    assert message.startswith("p.toml:2: chat.seed: unknown key")
    assert "(and 1 more problem)" in message


def test_dotted_and_quoted_keys_are_located() -> None:
    assert error_of('x = 1\nsampling.top_k = "a"\n').startswith("p.toml:1: x: unknown key")
    assert error_of('[sampling]\n"top_k" = "a"\n').startswith("p.toml:2: sampling.top_k: expected an integer")
    assert error_of('\nsampling.top_k = "a"\n').startswith("p.toml:2: sampling.top_k:")


def test_every_problem_is_listed_for_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[sampling]\ntemperature = 'hot'\ntop_q = 1\n\n[chat]\nkv_bits = 1\n[bench]\nkv_bits = 16\n")
    assert main(["profiles", "validate", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"temper: {bad}:2: sampling.temperature: expected a number, got a string",
        f"temper: {bad}:3: sampling.top_q: unknown key (known here: temperature, top_p, top_k, min_p, "
        "repetition_penalty, repetition_context, max_tokens, seed)",
        f"temper: {bad}:6: chat.kv_bits: must be one of 0, 4, 8, got 1",
        f"temper: {bad}:8: bench.kv_bits: must be one of 0, 4, 8, got 16",
    ]


# -- round trip ------------------------------------------------------------------------------------------
def test_commented_file_round_trips_byte_for_byte(tmp_path: Path) -> None:
    profile = loads(COMMENTED)
    assert profile.text() == COMMENTED
    (tmp_path / "config").mkdir()
    path = save(profile, "mine")
    assert path.read_bytes() == COMMENTED.encode()


def test_a_change_keeps_comments_and_order() -> None:
    profile = loads(COMMENTED)
    profile.set("sampling", "temperature", 0.9)
    profile.set("bench", "repetitions", 2)
    text = profile.text()
    assert "# how hot\ntemperature   =   0.9" in text
    assert "top_k = 40  # keep it tight" in text
    assert text.index("[sampling]") < text.index("[chat]") < text.index("[bench]")
    again = loads(text)
    assert again.get("sampling", "temperature") == 0.9 and again.get("bench", "repetitions") == 2


def test_set_validates() -> None:
    profile = Profile.default()
    with pytest.raises(ProfileError, match="sampling.top_p: must be at most 1"):
        profile.set("sampling", "top_p", 2)
    assert profile.get("sampling", "top_p") == 0.95  # the default (the engine's own), unchanged


# -- migration -------------------------------------------------------------------------------------------
V0 = """\
# an old profile (no version key)
[sampling]
max_new_tokens = 256  # old name

[chat]
draft_model = "mlx-community/tiny"
"""


def test_migration_from_version_0_to_1() -> None:
    profile = loads(V0)
    assert profile.migrated_from == 0
    assert profile.get("sampling", "max_tokens") == 256
    assert profile.get("chat", "drafter") == "mlx-community/tiny"
    text = profile.text()
    assert "max_tokens = 256  # old name" in text and "max_new_tokens" not in text
    assert "version = 1" in text and text.startswith("# an old profile")
    assert loads(text).migrated_from is None


def test_explicit_version_0_migrates_and_errors_point_at_the_old_key() -> None:
    assert loads("version = 0\n[quantize]\nbpw = 4.5\n").get("quantize", "target_bpw") == 4.5
    assert error_of("version = 0\n\n[sampling]\nmax_new_tokens = 0\n").startswith(
        "p.toml:4: sampling.max_tokens: must be at least 1"
    )


def test_loading_an_old_profile_does_not_rewrite_it(tmp_path: Path) -> None:
    path = tmp_path / "old.toml"
    path.write_text(V0)
    load(str(path))
    assert path.read_text() == V0


# -- store: shipped, user, broken ------------------------------------------------------------------------
def test_shipped_profiles_all_load_and_have_comments() -> None:
    names = {ref.name for ref in list_profiles() if ref.source == "shipped"}
    assert {"precise", "creative", "oq4-balanced", "bench-quick"} <= names
    for name in names:
        profile = load(name)
        assert profile.description and "#" in (shipped_dir() / f"{name}.toml").read_text()


def test_user_profile_overrides_shipped_one() -> None:
    user_dir().mkdir(parents=True)
    (user_dir() / "precise.toml").write_text('description = "my precise"\n')
    assert load("precise").description == "my precise"
    assert load("precise").source == "user"


def test_broken_profile_gives_defaults_and_is_not_overwritten() -> None:
    user_dir().mkdir(parents=True)
    broken = user_dir() / "broken.toml"
    broken.write_text("[sampling]\ntemperature = 'x'  # my typo\n")
    profile, error = load_or_default("broken")
    assert profile.source == "default" and profile.get("sampling", "temperature") == 0.7
    assert error and "broken.toml:2: sampling.temperature" in error and "using defaults" in error
    with pytest.raises(ProfileError, match="not saving over a profile that does not load"):
        save(load("precise").copy("broken"), "broken")
    assert broken.read_text() == "[sampling]\ntemperature = 'x'  # my typo\n"


def test_missing_profile_is_a_clear_error() -> None:
    with pytest.raises(ProfileError, match=r"no profile named 'nope' \(have: bench-quick"):
        load("nope")
    assert load_or_default("nope")[1].startswith("no profile named 'nope'")


def test_save_refuses_bad_names_and_existing_unless_asked() -> None:
    with pytest.raises(ProfileError, match="bad profile name"):
        save(Profile.default(), "../escape")
    save(load("precise").copy("mine"), "mine")
    with pytest.raises(ProfileError, match="exists"):
        save(load("creative").copy("mine"), "mine", overwrite=False)
    assert load("mine").get("sampling", "temperature") == 0.2


# -- diff ------------------------------------------------------------------------------------------------
def test_diff_lists_effective_differences_only() -> None:
    a = loads("[sampling]\ntemperature = 0.7\ntop_k = 5\n", "a")  # 0.7 is the default
    b = loads("[sampling]\ntop_k = 6\n", "b")
    assert [(c.key, c.b) for c in diff(a, b)] == [("sampling.top_k", 6)]
    assert diff(a, a) == []


def test_cli_list_show_diff(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^precise\s+shipped\s+Low-temperature", out, re.M)
    assert main(["profiles", "show", "precise"]) == 0
    assert "temperature = 0.2" in capsys.readouterr().out
    assert main(["profiles", "diff", "precise", "creative"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^sampling\.temperature\s+0\.2\s+1\.0$", out, re.M)
    assert main(["profiles", "show", "nope"]) == 2
    assert capsys.readouterr().err.startswith("temper: no profile named 'nope'")


def test_file_path_profiles(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text("[bench]\nrepetitions = 9\n")
    assert load(str(path)).get("bench", "repetitions") == 9
    assert load_file(path).name == "x"
    with pytest.raises(ProfileError, match="no such profile file"):
        load(str(tmp_path / "missing.toml"))
