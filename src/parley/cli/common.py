"""What the `parley` subcommands share."""

from __future__ import annotations

import argparse
from typing import Any


def add_command(commands: Any, name: str, help: str, description: str) -> argparse.ArgumentParser:
    """A subcommand of `commands` (the parser's subparsers) whose description keeps its line
    breaks."""
    p: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return p
