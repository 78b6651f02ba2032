"""Profile format migrations. Version 0 (or no `version` key) is the draft format; 1 is current.

0 -> 1 renames three keys: sampling.max_new_tokens -> max_tokens, chat.draft_model -> drafter,
quantize.bpw -> target_bpw. Migrations act on the plain dict (for validation) and on the tomlkit
document (for saving) the same way, so a saved migrated profile keeps its comments and order.
"""

from __future__ import annotations

from typing import Any

import tomlkit

from .schema import CURRENT_VERSION

RENAMES_0_TO_1 = {
    ("sampling", "max_new_tokens"): "max_tokens",
    ("chat", "draft_model"): "drafter",
    ("quantize", "bpw"): "target_bpw",
}


def version_of(data: dict[str, Any]) -> int | None:
    """The declared version, 0 when absent, None when not an integer (validation reports it)."""
    value = data.get("version", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def old_name(section: str, key: str) -> str:
    """The v0 name of a v1 key (for finding its line in an unmigrated file)."""
    for (sec, old), new in RENAMES_0_TO_1.items():
        if sec == section and new == key:
            return old
    return key


def migrate_data(data: dict[str, Any]) -> dict[str, Any]:
    if version_of(data) != 0:
        return data
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for (section, old), new in RENAMES_0_TO_1.items():
        table = out.get(section)
        if isinstance(table, dict) and old in table and new not in table:
            table[new] = table.pop(old)
    out["version"] = CURRENT_VERSION
    return out


def migrate_doc(doc: tomlkit.TOMLDocument) -> bool:
    """Migrate a tomlkit document in place; True if it changed."""
    version = doc.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version != 0:
        return False
    for (section, old), new in RENAMES_0_TO_1.items():
        table = doc.get(section)
        if isinstance(table, dict) and old in table and new not in table:
            container = getattr(table, "value", None)
            if container is not None and hasattr(container, "_replace"):
                container._replace(old, new, table[old])
            else:  # inline tables and others: move the value (its comment stays behind)
                table[new] = table.pop(old)
    doc["version"] = CURRENT_VERSION
    return True
