"""What a profile may hold: four optional sections and a version. Every key is typed and bounded.

A profile is a TOML file; each section is optional and every key in it is optional. Values left out
take the defaults below (None means "the engine's own default").
"""

from __future__ import annotations

from ..quant.request import QuantSettings
from ..strict import field_specs
from ..tomlcheck import Field

CURRENT_VERSION = 1

EFFORTS = ("none", "low", "medium", "high")

SAMPLING = {
    "temperature": Field("float", 0.7, "randomness of sampling (0 = greedy)", min=0, max=5),
    "top_p": Field("float", 1.0, "nucleus sampling mass", min=0, max=1),
    "top_k": Field("int", 0, "sample from the k most likely tokens (0 = off)", min=0),
    "min_p": Field("float", 0.0, "drop tokens below this fraction of the top probability", min=0, max=1),
    "repetition_penalty": Field("float", 1.0, "penalty for repeated tokens (1 = off)", min=0.01, max=10),
    "max_tokens": Field("int", 1024, "most tokens to generate per answer", min=1),
    "seed": Field("int", None, "random seed (unset = random)", min=0),
}

CHAT = {
    "system_prompt": Field("str", "", "system message sent first"),
    "reasoning_effort": Field("str", "medium", "how much the model thinks first", choices=EFFORTS),
    "drafter": Field("str", "", "draft model (folder or Hub id) for speculative decoding"),
    "num_draft_tokens": Field("int", 3, "tokens the drafter proposes per step", min=1, max=64),
    "kv_bits": Field("int", None, "quantize the KV cache to this many bits (unset = off)", min=2, max=8),
}

# The [quantize] section is the quantize settings model itself: one set of defaults and one validation
# for the profile, `temper quantize` and the Quantize tab (core/quant/request.py).
MODELS = {"quantize": QuantSettings}
QUANTIZE = field_specs(QuantSettings)

BENCH = {
    "prompt_lengths": Field("list[int]", [128, 512], "prompt sizes in tokens", min=1),
    "gen_lengths": Field("list[int]", [128], "tokens to generate", min=1),
    "repetitions": Field("int", 3, "runs per configuration", min=1),
    "batch_sizes": Field("list[int]", [1], "batch sizes", min=1),
}

SECTIONS = {"sampling": SAMPLING, "chat": CHAT, "quantize": QUANTIZE, "bench": BENCH}

SCHEMA = {
    "version": Field("int", CURRENT_VERSION, "profile format version", min=0, max=CURRENT_VERSION),
    "description": Field("str", "", "one line shown in pickers"),
    **SECTIONS,
    **MODELS,
}


def field(section: str, key: str) -> Field:
    try:
        return SECTIONS[section][key]
    except KeyError:
        raise KeyError(f"{section}.{key}") from None
