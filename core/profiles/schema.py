"""What a profile may hold: four optional sections and a version. Every key is typed and bounded.

A profile is a TOML file; each section is optional and every key in it is optional. Each section is a
settings model (core/strict.py) that the engine uses too, so values left out take the same defaults the
CLI and the app use, and a value a profile accepts is one the core accepts:
[sampling] core/engine/sampling.SamplingSettings, [chat] core/chat/settings.ChatProfile,
[quantize] core/quant/request.QuantSettings, [bench] core/bench/settings.BenchSettings.
"""

from __future__ import annotations

from ..bench.settings import BenchSettings
from ..chat.settings import ChatProfile
from ..engine.sampling import SamplingSettings
from ..quant.request import QuantSettings
from ..strict import field_specs
from ..tomlcheck import Field

CURRENT_VERSION = 1

MODELS = {"sampling": SamplingSettings, "chat": ChatProfile, "quantize": QuantSettings, "bench": BenchSettings}
SAMPLING, CHAT, QUANTIZE, BENCH = (field_specs(m) for m in MODELS.values())
SECTIONS = {"sampling": SAMPLING, "chat": CHAT, "quantize": QUANTIZE, "bench": BENCH}

SCHEMA = {
    "version": Field("int", CURRENT_VERSION, "profile format version", min=0, max=CURRENT_VERSION),
    "description": Field("str", "", "one line shown in pickers"),
    **MODELS,
}


def field(section: str, key: str) -> Field:
    try:
        return SECTIONS[section][key]
    except KeyError:
        raise KeyError(f"{section}.{key}") from None
