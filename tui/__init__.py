"""temper's terminal UI (Textual only; no model logic lives here)."""
