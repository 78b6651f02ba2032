"""Messages views send to the app. Kept tiny on purpose: the app is the only router.

`OpenModel(path, target)`: "open this model in that tab" (the one class of that name; views post it). The
app sets `app.model` (shown in the header) and switches to the tab `target` ("chat", "quantize", ... one of
the tab ids in `tui/app.py` TABS).

The active profile is `app.profile` (a reactive holding a `temper.core.profiles.Profile`); the active
model is `app.model` (a path string or None). Views follow them with `self.watch(self.app, "profile", fn)`
and read values with `app.profile.get("sampling", "temperature")` (the schema default when unset). A view
that lets the user change a profile value calls `app.profile.set(section, key, value)` (validated, keeps
the file's comments): "Save profile as..." then saves exactly what is in effect.
User settings are `app.settings` (temper.core.settings.Settings: models_folders, output_folder,
refresh_rate...); the Settings screen replaces the object and calls `app.apply_settings`.
Engine events reach the widget that owns the job (`app.own_job(job.id, self)` right after submitting) and
the widgets following its kind (`app.follow_jobs("quantize", self)`) as `EngineEvent` messages
(tui/bridge.py): handle `on_engine_event`.
"""

from __future__ import annotations

from pathlib import Path

from textual.message import Message


class OpenModel(Message):
    """Ask the app to make `path` the active model and show the `target` tab."""

    def __init__(self, path: str | Path, target: str = "chat") -> None:
        super().__init__()
        self.path = str(path)
        self.target = target
