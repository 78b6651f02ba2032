"""Errors that reach the user. Each carries a one-line message that says what is wrong and what to do."""

from __future__ import annotations


class TemperError(Exception):
    """Base class: str(error) is a single line fit to show a user as it is."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ModelLoadError(TemperError):
    """A folder or Hub id that cannot be loaded as a model."""


class ProfileError(TemperError):
    """A profile or config file that does not validate."""


class QuantError(TemperError):
    """A quantization request that cannot be carried out as asked."""


class JobCancelled(TemperError):
    """Raised inside a job when its cancel was requested; the engine reports it as cancelled."""

    def __init__(self, message: str = "cancelled", *, resumable: bool = False):
        super().__init__(message)
        self.resumable = resumable   # stopped by the app closing, not by the user: a job record stays open
