"""What one timed generation measures, and how repeated runs are summarised (mean ± sd, llama-bench style).

Definitions (the same as oMLX's benchmark table):
- TTFT   = time of the first generated token − start of the request (prefill + first sampling step)
- TPOT   = decode time / (n − 1), decode time = last token − first token, n = generated tokens
- prefill tok/s = prompt tokens / TTFT
- decode tok/s  = (n − 1) / decode time           (= 1 / TPOT)
- end-to-end    = last token − start
- throughput    = (prompt tokens + generated tokens) / end-to-end
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RunTiming:
    """One request, timed with a monotonic clock (seconds)."""

    prompt_tokens: int
    generated: int
    start: float
    first_token: float
    end: float
    peak_memory: int = 0  # bytes, MLX's peak since the reset before this run
    rss: int = 0  # bytes, process resident set after the run
    kv_bytes: int = 0  # KV cache bytes at the end of the run (used part only)

    @property
    def ttft(self) -> float:
        return self.first_token - self.start

    @property
    def decode_time(self) -> float:
        return self.end - self.first_token

    @property
    def tpot(self) -> float:
        return self.decode_time / (self.generated - 1) if self.generated > 1 else math.nan

    @property
    def prefill_tps(self) -> float:
        return self.prompt_tokens / self.ttft if self.ttft > 0 else math.nan

    @property
    def decode_tps(self) -> float:
        return (self.generated - 1) / self.decode_time if self.generated > 1 and self.decode_time > 0 else math.nan

    @property
    def e2e(self) -> float:
        return self.end - self.start

    @property
    def throughput(self) -> float:
        return (self.prompt_tokens + self.generated) / self.e2e if self.e2e > 0 else math.nan

    def metrics(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in METRICS}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunTiming:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


# Metric name -> (column label, unit). Order is the table order.
METRICS: dict[str, tuple[str, str]] = {
    "ttft": ("TTFT", "ms"),
    "tpot": ("TPOT", "ms"),
    "prefill_tps": ("pp tok/s", "tok/s"),
    "decode_tps": ("tg tok/s", "tok/s"),
    "e2e": ("E2E", "s"),
    "throughput": ("throughput", "tok/s"),
    "peak_memory": ("peak mem", "GB"),
    "rss": ("RSS", "GB"),
}


@dataclass(frozen=True)
class Stat:
    mean: float
    sd: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Stat:
        xs = [v for v in values if not math.isnan(v)]
        if not xs:
            return cls(math.nan, math.nan, 0)
        mean = sum(xs) / len(xs)
        sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
        return cls(mean, sd, len(xs))

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "sd": self.sd, "n": self.n}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stat:
        def num(v: Any) -> float:
            return math.nan if v is None else float(v)

        return cls(num(data.get("mean")), num(data.get("sd")), int(data.get("n", 0)))


def summarize(runs: list[RunTiming]) -> dict[str, Stat]:
    """Mean ± sample sd of every metric over the counted runs."""
    out: dict[str, Stat] = {}
    for name in METRICS:
        out[name] = Stat.of([float(getattr(r, name)) for r in runs])
    return out


def scale(name: str, value: float) -> float:
    """A metric in its display unit (ms for times under a second, GB for bytes)."""
    unit = METRICS[name][1]
    if unit == "ms":
        return value * 1000.0
    if unit == "GB":
        return value / 1e9
    return value


def fmt(name: str, stat: Stat) -> str:
    """'12.34 ± 0.56' in the metric's display unit (llama-bench style)."""
    if stat.n == 0 or math.isnan(stat.mean):
        return "-"
    mean, sd = scale(name, stat.mean), scale(name, stat.sd)
    digits = 2 if abs(mean) < 1000 else 0
    if stat.n == 1:                 # one run has no spread: say so rather than print ± 0.00
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"
