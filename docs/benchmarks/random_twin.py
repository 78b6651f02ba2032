"""A random-weight twin of a real model: same config, same tokenizer, new random weights (bf16).

Time and memory of decoding, evals and quantization depend on the shapes and the token counts, not on the
weights' values, so a twin measures them where the real weights cannot travel (the GPU machine takes 64 MiB a
call; a model's tokenizer and config are a few MB). Its answers are noise: never report a twin's accuracy.

    python docs/benchmarks/random_twin.py pack SRC DIR     # here: copy SRC's config + tokenizer files to DIR
    python docs/benchmarks/random_twin.py build DIR OUT    # there: random bf16 weights in DIR's config -> OUT

Random weights rarely emit a stop string, so generation runs to max_tokens: eval times on a twin are an
upper bound for the real model's.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

KEEP = ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
        "generation_config.json")


def pack(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in KEEP:
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)
    print(f"packed {sorted(p.name for p in dst.iterdir())} into {dst}")


def build(packed: Path, out: Path) -> Path:
    from temper.core.library.synthetic import save_random

    config = json.loads((packed / "config.json").read_text())
    config.pop("quantization", None)
    config.pop("quantization_config", None)
    config = save_random(out, config, tokenizer_vocab=None)
    for name in KEEP:
        if name != "config.json" and (packed / name).exists():
            shutil.copy2(packed / name, out / name)
    config.setdefault("temper", {})["random_twin_of"] = str(packed)
    (out / "config.json").write_text(json.dumps(config, indent=1))
    print(f"built a random-weight twin in {out}")
    return out


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("pack", "build"):
        sys.exit(__doc__)
    (pack if sys.argv[1] == "pack" else build)(Path(sys.argv[2]), Path(sys.argv[3]))
