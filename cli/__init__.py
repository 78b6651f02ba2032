"""Headless commands: `temper <command>`. Each module here with a `register(subparsers)` is one command."""
