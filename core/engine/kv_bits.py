"""The KV-cache bits setting, one type for the profile's [chat] and [bench], the CLI and the app.

None: the model's kv_config.json plan if it has one (`temper kv-calibrate`), else float; 0: float (off);
4 / 8: every cache quantized at that many bits. Imports neither MLX nor mlx-lm (profiles validate with it).
"""

from __future__ import annotations

from typing import Literal

from ..errors import TemperError

KV_BITS = (4, 8)
KvBits = Literal[0, 4, 8] | None


def check_kv_bits(value: int | None) -> int | None:
    if value is not None and value != 0 and value not in KV_BITS:
        raise TemperError(f"kv bits must be 4 or 8, or 0 for float (got {value})")
    return value
