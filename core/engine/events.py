"""Events the engine thread sends out. Plain frozen dataclasses: the UI bridge turns them into messages.

Every event names the job it belongs to. Domain modules (generation, quantization, bench) define their
own subclasses of `Event`; the ones here are the lifecycle every job shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    job: int


@dataclass(frozen=True)
class Started(Event):
    kind: str


@dataclass(frozen=True)
class Progress(Event):
    """Generic progress: `phase` names the step, `done`/`total` count units of it (total may be unknown)."""

    phase: str
    done: int = 0
    total: int | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed(Event):
    message: str
    error_type: str = "Exception"


@dataclass(frozen=True)
class Cancelled(Event):
    message: str = "cancelled"


@dataclass(frozen=True)
class Finished(Event):
    result: Any = None


TERMINAL = (Failed, Cancelled, Finished)


def is_terminal(event: Event) -> bool:
    return isinstance(event, TERMINAL)
