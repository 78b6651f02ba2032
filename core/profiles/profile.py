"""A loaded profile: validated plain values plus the tomlkit document they came from (for saving)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

from ..errors import ProfileError
from ..tomlcheck import validate_model
from .schema import CURRENT_VERSION, MODELS, SECTIONS
from .schema import field as schema_field


@dataclass
class Profile:
    name: str
    values: dict[str, Any] = field(default_factory=dict)
    doc: tomlkit.TOMLDocument = field(default_factory=tomlkit.document)
    path: Path | None = None
    source: str = "default"  # "shipped", "user", "file" or "default"
    migrated_from: int | None = None

    @classmethod
    def default(cls) -> Profile:
        doc = tomlkit.document()
        doc["version"] = CURRENT_VERSION
        return cls("default", {"version": CURRENT_VERSION}, doc)

    @property
    def description(self) -> str:
        return self.values.get("description", "")

    def section(self, name: str) -> dict[str, Any]:
        """The values set in one section (no defaults filled in)."""
        if name not in SECTIONS:
            raise KeyError(name)
        return dict(self.values.get(name, {}))

    def get(self, section: str, key: str) -> Any:
        """The value in effect: the profile's own, else the schema default."""
        spec = schema_field(section, key)
        return self.values.get(section, {}).get(key, spec.default)

    def effective(self, section: str) -> dict[str, Any]:
        return {key: self.get(section, key) for key in SECTIONS[section]}

    def flat(self) -> dict[str, Any]:
        """Explicitly set values as {"section.key": value}."""
        out: dict[str, Any] = {}
        for section in SECTIONS:
            for key, value in self.values.get(section, {}).items():
                out[f"{section}.{key}"] = value
        return out

    def set(self, section: str, key: str, value: Any) -> None:
        """Set one value (validated); the document keeps its comments and order."""
        schema_field(section, key)                      # an unknown key is a KeyError, as before
        value = self._checked(section, key, value)
        if section not in self.doc:
            self.doc[section] = tomlkit.table()
        self.doc[section][key] = value
        self.values.setdefault(section, {})[key] = value

    def _checked(self, section: str, key: str, value: Any) -> Any:
        """A value checked with the rest of its section by the section's settings model."""
        _, issues = validate_model({**self.values.get(section, {}), key: value}, MODELS[section], (section,))
        if issues:
            where = ".".join(issues[0].path)
            raise ProfileError(f"{where}: {issues[0].message}")
        return MODELS[section].model_validate({key: value}).given()[key]

    def unset(self, section: str, key: str) -> None:
        schema_field(section, key)
        if section in self.doc and key in self.doc[section]:
            del self.doc[section][key]
        self.values.get(section, {}).pop(key, None)

    def text(self) -> str:
        return self.doc.as_string()

    def copy(self, name: str | None = None) -> Profile:
        doc = tomlkit.parse(self.doc.as_string())
        values = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.values.items()}
        return Profile(name or self.name, values, doc, self.path, self.source, self.migrated_from)
