"""What the `parley` subcommands share."""

from __future__ import annotations

import argparse
from typing import Any

from parley.protocol.address import AddressError, RelayAddress


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


def add_relays_option(p: argparse.ArgumentParser) -> None:
    """-s/--relay RELAY_ADDRESS, required, repeated: the relays of a chat (`args.relays`)."""
    p.add_argument(
        "-s",
        "--relay",
        dest="relays",
        action="append",
        required=True,
        metavar="RELAY_ADDRESS",
        help="a relay address (parley://FINGERPRINT@host[:port]) as `parley relay` prints "
        "it; repeat for more relays",
    )


def bad_relay(relays: list[str]) -> str | None:
    """What is wrong with the first relay address that does not parse (None: all do)."""
    for relay in relays:
        try:
            RelayAddress.parse(relay)
        except AddressError as e:
            return str(e)
    return None
