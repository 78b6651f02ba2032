"""A profile's [bench] section and the defaults of `temper bench` and the Performance tab: one model."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from ..engine.kv_bits import KvBits
from ..strict import StrictModel


class BenchSettings(StrictModel):
    what: ClassVar[str] = "bench"

    prompt_lengths: list[Annotated[int, Field(ge=1)]] = Field([512], min_length=1, description="prompt sizes in tokens")
    gen_lengths: list[Annotated[int, Field(ge=2)]] = Field([128], min_length=1,
                                                           description="tokens to generate (at least 2: TPOT needs two)")
    repetitions: int = Field(3, ge=1, description="counted runs per shape")
    batch_sizes: list[Annotated[int, Field(ge=1)]] = Field([], description="concurrent requests to test "
                                                                            "(empty: no batching suite)")
    kv_bits: KvBits = Field(None, description="quantize the KV cache to this many bits (0 = float; unset = the "
                                              "model's kv_config.json plan if any, else float)")

    def config(self, **rest):
        """The runner's BenchConfig for these settings (rest: batch_pp, batch_tg, warmup, bandwidth, and kv_bits
        to override the setting's)."""
        from .runner import BenchConfig

        config = BenchConfig(pp=list(self.prompt_lengths), tg=list(self.gen_lengths), n=self.repetitions,
                             batch=list(self.batch_sizes), **{"kv_bits": self.kv_bits, **rest})
        config.validate()
        return config
