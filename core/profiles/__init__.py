"""Profiles: TOML files of sampling, chat, quantization and bench settings (see schema.py)."""

from .diff import Change, diff, diff_table
from .load import load_file, loads
from .profile import Profile
from .schema import CURRENT_VERSION, SCHEMA, SECTIONS
from .store import ProfileRef, list_profiles, load, load_or_default, resolve, save, shipped_dir, user_dir

__all__ = [
    "CURRENT_VERSION",
    "SCHEMA",
    "SECTIONS",
    "Change",
    "Profile",
    "ProfileRef",
    "diff",
    "diff_table",
    "list_profiles",
    "load",
    "load_file",
    "load_or_default",
    "loads",
    "resolve",
    "save",
    "shipped_dir",
    "user_dir",
]
