"""temper's engine: everything that is not the terminal UI. Never imports textual or rich."""

__version__ = "0.1.0"
