"""The `parley` command line: `parley relay`, and more as the layers arrive."""

from __future__ import annotations

import argparse
import logging
import sys

from parley import __version__
from parley.cli import bot_cmd, chat_cmd, demo_cmd, relay_cmd


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley", description="parley: private messaging with self-healing groups"
    )
    parser.add_argument("--version", action="version", version=f"parley {__version__}")
    parser.add_argument(
        "--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default) or ERROR"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    relay_cmd.add_parser(commands)
    chat_cmd.add_parser(commands)
    demo_cmd.add_parser(commands)
    bot_cmd.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        result: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
