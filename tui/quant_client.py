"""The one door between the Quantize/Layers tabs and the quantization core.

Views never import core.quant themselves: they ask a `QuantClient` (the protocol below), reached as
`app.quant_client`. This module holds the protocol and the types it returns; the real client,
`EngineQuantClient` (tui/engine_quant_client.py), runs anything that touches MLX as an engine job. The model
list comes from the app's one cached library scan (core/library/service.py) and may block: views ask for it
from a worker. Tests pass a fake with the same methods (tests/tui/fake_quant.py) as `TemperApp(quant_client=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from temper.core import jobs
from temper.core.engine import Job
from temper.core.profiles import Profile
from temper.core.quant.request import QuantRequest, QuantSettings
from temper.core.quant.scores import SensitivityTable

if TYPE_CHECKING:
    from textual.widget import Widget


@dataclass(frozen=True)
class ModelChoice:
    name: str
    path: str
    arch: str = "?"
    params: int = 0
    size_bytes: int = 0
    float_bytes: int = 2
    quantization: str = "none"

    @property
    def quantized(self) -> bool:
        return self.quantization not in ("none", "", None)


@dataclass(frozen=True)
class Preflight:
    free_bytes: int
    needed_bytes: int
    streamed: bool
    eta_s: float | None      # None: no rule for this backend (core/quant/time_rule.py)

    def summary(self) -> str:
        how = "streamed layer by layer" if self.streamed else "fits in memory"
        return f"{how}: needs ~{human_bytes(self.needed_bytes)}, free {human_bytes(self.free_bytes)}"


@dataclass(frozen=True)
class Recipe:
    name: str
    label: str
    target_bpw: float | None = None
    description: str = ""


@dataclass(frozen=True)
class Prediction:
    bpw: float
    size_bytes: int
    kl: float | None       # None until sensitivity scores exist for this model
    note: str = ""


@dataclass(frozen=True)
class Allocation:
    choice: dict[str, str]           # tensor path -> candidate key
    bpw: float
    size_bytes: int
    kl: float
    pinned: dict[str, str] = field(default_factory=dict)

    def bits_of(self, path: str) -> int | None:
        """Chosen width (16 for a tensor kept in float), None if not allocated."""
        key = self.choice.get(path)
        if not key:
            return None
        return 16 if key == "float" else int(key.split(":")[1].rstrip("b"))


def _menu() -> list[Recipe]:
    """The app's recipe list: the core's registry (core/quant/recipes.py), as menu rows."""
    from temper.core.quant.recipes import menu

    return [Recipe(r.name, r.label, r.default_bpw if r.name != "temper" else None, r.label) for r in menu()]


RECIPES = _menu()


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


@runtime_checkable
class QuantClient(Protocol):
    """What the Quantize and Layers tabs may ask: the real EngineQuantClient and the tests' fake both
    implement it (tests/tui/test_quant_client_protocol.py checks their signatures against this one)."""

    def models(self, active: str | None = None) -> list[ModelChoice]: ...
    def model(self, path: str) -> ModelChoice: ...
    def preflight(self, model: ModelChoice, request: QuantRequest) -> Preflight: ...
    def float_copy_of(self, model: ModelChoice) -> str | None: ...
    def make_float_copy(self, model: ModelChoice) -> Job[str]: ...
    def recipes(self) -> list[Recipe]: ...
    def default_output(self, request: QuantRequest) -> str: ...
    def saved_table(self, model_path: str) -> SensitivityTable | None: ...
    def predict(self, model: ModelChoice, request: QuantRequest) -> Prediction: ...
    def allocate(self, table: SensitivityTable, target_bpw: float, pins: dict[str, str],
                 request: QuantRequest | None = None) -> Allocation: ...
    def frontier(self, table: SensitivityTable, pins: dict[str, str], points: int = 12) -> list[tuple[float, float]]: ...
    def start(self, request: QuantRequest) -> Job[dict]: ...
    def measure(self, model_path: str, settings: QuantSettings) -> Job[SensitivityTable]: ...
    def interrupted(self) -> list[jobs.JobRecord]: ...
    def resume(self, record: jobs.JobRecord) -> Job[dict]: ...
    def discard(self, record: jobs.JobRecord) -> None: ...
    def run_evals(self, base: str, quant: str, tasks: list[str], limit: int | None) -> Job[dict]: ...
    def past_results(self, model_path: str) -> list[jobs.JobRecord]: ...
    def request_from_profile(self, profile: Profile | None) -> QuantRequest: ...
    def save_profile(self, name: str, request: QuantRequest, base: Profile | None = None) -> tuple[Profile, Path]: ...


def tab_is_active(widget: Widget) -> bool:
    """Is `widget` inside the tab pane on show? (Focusing inside a hidden pane would bring it forward.)"""
    from textual.widgets import TabbedContent, TabPane

    pane = next((a for a in widget.ancestors if isinstance(a, TabPane)), None)
    tabs = next((a for a in widget.ancestors if isinstance(a, TabbedContent)), None)
    return pane is None or tabs is None or tabs.active == pane.id


def request_from_profile(profile: Profile | None) -> QuantRequest:
    """The wizard's starting settings: the profile's [quantize] section over the settings' own defaults."""
    if profile is None:
        return QuantRequest()
    return QuantRequest(**profile.section("quantize"))


def save_to_profile(name: str, request: QuantRequest, base: Profile | None = None) -> tuple[Profile, Path]:
    """Copy `base` (the active profile, comments kept) as `name` with the request's [quantize] values."""
    from temper.core.profiles.store import save

    profile = base.copy(name) if base is not None else Profile.default()
    for key, value in request.settings().to_dict().items():
        if value is None:
            profile.unset("quantize", key)
        else:
            profile.set("quantize", key, value)
    path = save(profile, name)
    return profile, path
