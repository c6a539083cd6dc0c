"""`parley bot SCRIPT.py`: run a bot written for SimpleX's Python library on parley's chat."""

from __future__ import annotations

import argparse
import logging
import runpy
import sys
from pathlib import Path
from typing import Any

from parley.cli.common import add_command, add_relays_option, bad_relay

DESCRIPTION = """\
Run a bot script written for SimpleX's official Python library (the simplex-chat package
on PyPI, 7.x) on parley's chat, in this process, without SimpleX's native library.

Run it from the script's folder: the SqliteDb(file_prefix=...) the script names is where
parley keeps the bot's databases (PREFIX_chat.db, PREFIX_agent.db). The library logs the
bot's address when it starts. Arguments after -- are passed to the script (sys.argv).
Needs the library: pip install simplex-chat
"""


def add_parser(commands: Any) -> None:
    p = add_command(
        commands,
        "bot",
        "run a bot written for SimpleX's Python library (simplex-chat) on parley",
        DESCRIPTION,
    )
    p.add_argument("script", type=Path, metavar="SCRIPT.py", help="the bot script")
    add_relays_option(p)
    p.add_argument(
        "script_args",
        nargs="*",
        metavar="ARG",
        help="arguments for the script (after --, those that start with a dash)",
    )
    p.set_defaults(run=run)


def _fail(message: str) -> None:
    print(f"parley bot: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    problem = bad_relay(args.relays)
    if problem is not None:
        _fail(problem)
        return 2
    script: Path = args.script
    if not script.is_file():
        _fail(f"no such script: {script}")
        return 2
    try:
        import simplex_chat  # noqa: F401
    except ImportError:
        _fail("the bot library is not installed: pip install simplex-chat")
        return 2
    from parley.botlib import LibraryBackend

    backend = LibraryBackend(list(args.relays))
    undo = backend.install()
    # the library logs at INFO (the bot's address among it): show it under parley's logging
    logging.getLogger("simplex_chat").setLevel(logging.INFO)
    folder = str(script.resolve().parent)
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(script), *args.script_args]
    sys.path.insert(0, folder)
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        return 130
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        undo()
    return 0
