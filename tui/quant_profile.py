"""Save and load the wizard's settings as a profile's [quantize] section (TOML, comments kept).

Uses the project's profiles module when it is installed (core/profiles); until then a minimal tomlkit
reader/writer with the same layout: `version = 1` and a `[quantize]` table with the schema's keys.
Loading an existing file and saving over it keeps the other sections and every comment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit
from temper.core import atomic
from temper.core.errors import ProfileError, QuantError
from temper.core.quant.request import QuantRequest

# The [quantize] keys a profile holds (the rest of a request is per run: model, output...).
PROFILE_KEYS = ("recipe", "target_bpw", "size_gb", "bits", "group_sizes", "modes", "protect", "awq",
                "calibration", "samples", "seq_len")


def to_section(request: QuantRequest) -> dict[str, Any]:
    data = request.to_dict()
    return {k: data[k] for k in PROFILE_KEYS if data[k] is not None}


def save(path: Path, request: QuantRequest) -> Path:
    path = Path(path).expanduser()
    if path.suffix != ".toml":
        path = path.with_suffix(".toml")
    if path.exists():
        try:
            doc = tomlkit.parse(path.read_text())
        except Exception as exc:
            raise ProfileError(f"{path.name} is not valid TOML ({exc}): choose another file") from exc
    else:
        doc = tomlkit.document()
        doc.add(tomlkit.comment("temper profile: settings saved from the Quantize wizard"))
        doc["version"] = 1
    section = doc.get("quantize")
    if section is None:
        section = tomlkit.table()
        doc["quantize"] = section
    values = to_section(request)
    for key in PROFILE_KEYS:
        if key in values:
            section[key] = values[key]
        elif key in section:
            del section[key]
    atomic.write_text(path, tomlkit.dumps(doc))
    return path


def load(path: Path, base: QuantRequest | None = None) -> QuantRequest:
    path = Path(path).expanduser()
    try:
        data = tomlkit.parse(path.read_text()).unwrap()
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror or exc}") from exc
    except Exception as exc:
        raise ProfileError(f"{path.name} is not valid TOML: {exc}") from exc
    section = data.get("quantize")
    if not isinstance(section, dict):
        raise ProfileError(f"{path.name} has no [quantize] section")
    unknown = sorted(set(section) - set(PROFILE_KEYS))
    if unknown:
        raise ProfileError(f"{path.name}: unknown [quantize] key {unknown[0]!r}")
    merged = {**(base or QuantRequest()).to_dict(), **section}
    try:
        request = QuantRequest.from_dict(merged)
        if request.model:
            request.validate()
        else:
            request.candidates()
    except QuantError as exc:
        raise ProfileError(f"{path.name}: {exc}") from exc
    return request
