"""The engine thread and what runs on it."""

from .events import Cancelled, Event, Failed, Finished, Progress, Started, is_terminal
from .thread import Engine, Job, JobContext, get_engine

__all__ = [
    "Cancelled", "Engine", "Event", "Failed", "Finished", "Job", "JobContext", "Progress", "Started",
    "get_engine", "is_terminal",
]
