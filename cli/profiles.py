"""`temper profiles list|show|diff|validate`: the headless twin of the app's profile picker."""

from __future__ import annotations

import argparse
import sys

from ..core.errors import ProfileError
from ..core.profiles import diff_table, list_profiles, load, load_file, resolve
from ..core.profiles.load import problems
from ..core.tomlcheck import read_text
from .output import print_error, print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("profiles", help="list, show, compare and check profiles")
    sub = parser.add_subparsers(dest="profiles_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="shipped and user profiles")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="print a profile's file and the values it sets")
    p.add_argument("name", help="profile name or TOML file")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("diff", help="keys whose value in effect differs between two profiles")
    p.add_argument("a")
    p.add_argument("b")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("validate", help="check profile files; exit 2 if any is invalid")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_validate)


def cmd_list(args: argparse.Namespace) -> int:
    refs = list_profiles()
    if not refs:
        print("no profiles")
        return 0
    rows = []
    for ref in refs:
        try:
            note = load_file(ref.path, ref.name, ref.source).description
        except ProfileError as exc:
            note = f"BROKEN: {exc}"
        rows.append((ref.name, ref.source, one_line(note)))
    print_table(None, rows)
    return 0


NOTE_CHARS = 100


def one_line(text: str, limit: int = NOTE_CHARS) -> str:
    """A description as one line of at most `limit` characters (a 10 MB description stays in its file)."""
    text = " ".join(text[: limit * 4].split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cmd_show(args: argparse.Namespace) -> int:
    ref = resolve(args.name)
    profile = load_file(ref.path, ref.name, ref.source)
    print(f"# {ref.name} ({ref.source}): {ref.path}")
    if profile.migrated_from is not None:
        print(f"# migrated from version {profile.migrated_from} on load (the file is unchanged)")
    sys.stdout.write(read_text(ref.path) if profile.migrated_from is None else profile.text())
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    a, b = load(args.a), load(args.b)
    header, rows = diff_table(a, b)
    if rows:
        print_table(header, rows)
    else:
        print(f"{a.name} and {b.name} are the same in effect")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    bad = 0
    for file in args.files:
        try:
            found = problems(read_text(file), file)
            profile = None if found else load_file(file)
        except ProfileError as exc:
            found = [str(exc)]
        if found:
            for line in found:
                print_error(str(line))
            bad += 1
        else:
            note = f" (version {profile.migrated_from}, migrates to 1)" if profile.migrated_from is not None else ""
            print(f"{file}: ok{note}")
    return 2 if bad else 0
