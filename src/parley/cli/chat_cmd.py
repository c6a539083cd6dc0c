"""`parley chat`: chat in the terminal, as a line-based client, or behind the WebSocket API."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, cast

from parley.agent.agent import AgentError
from parley.chat.controller import ChatConfig, ChatController, ChatError
from parley.cli.common import add_command, add_relays_option, bad_relay
from parley.store import DatabaseKeyError, encrypt_file, private_directory

API_PREFIX = "parley chat api: "
USER_PREFIX = "parley chat: you are "
NO_USER_LINE = "parley chat: no user yet: create it through the API (/_create user)"


class ApiServer(Protocol):
    """What `parley.api.server.serve_api` returns."""

    @property
    def port(self) -> int: ...

    async def close(self) -> None: ...


ServeApi = Callable[[ChatController, str, int], Awaitable[ApiServer]]


def default_db_prefix() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "parley" / "chat" / "parley"


DESCRIPTION = """\
Chat from the terminal. Type /help once it runs.

Modes:
  (default)   an interactive terminal: events are shown above the prompt.
  --headless  no terminal: events are printed as plain lines on stdout and, when stdin
              is not a terminal, each line read from stdin is run as a command (a
              scriptable client; the end of stdin does not stop it, /q or a signal does).
  --ws PORT   also serve the WebSocket bot API. The API server then owns the chat's
              event stream: with --headless, events go to API clients only and nothing
              is read from stdin; the interactive terminal still shows events (it reads
              a copy of the stream). With --headless and no user yet, --name may be
              left out: a bot creates the user with /_create user.
              --ws-token (or $PARLEY_API_TOKEN) makes clients present a token; binding
              --ws-host to an address other than loopback needs one.
"""


def add_parser(commands: Any) -> None:
    p = add_command(
        commands,
        "chat",
        "chat from the terminal (or run headless, or serve the bot API)",
        DESCRIPTION,
    )
    p.add_argument(
        "-d",
        "--db",
        dest="db_prefix",
        type=Path,
        default=default_db_prefix(),
        metavar="DBPREFIX",
        help="database file prefix: DBPREFIX_chat.db and DBPREFIX_agent.db "
        "(default $XDG_DATA_HOME/parley/chat/parley)",
    )
    add_relays_option(p)
    p.add_argument("--name", help="your display name, used on the first start to create you")
    p.add_argument("--ws", type=int, metavar="PORT", help="serve the WebSocket bot API on PORT")
    p.add_argument(
        "--ws-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address for --ws (default 127.0.0.1)",
    )
    p.add_argument(
        "--ws-token",
        default=os.environ.get("PARLEY_API_TOKEN") or None,
        metavar="TOKEN",
        help="the token API clients must present (ws://HOST:PORT/?token=TOKEN or an "
        "'Authorization: Bearer TOKEN' header); default $PARLEY_API_TOKEN. Required for "
        "a --ws-host other than loopback",
    )
    p.add_argument(
        "--headless", action="store_true", help="no interactive terminal (see the modes above)"
    )
    p.add_argument(
        "--db-key-file",
        type=Path,
        metavar="FILE",
        help="the passphrase of encrypted databases, from FILE (else $PARLEY_DB_KEY, else "
        "asked for at the terminal when the databases are encrypted)",
    )
    p.add_argument(
        "--encrypt-db",
        action="store_true",
        help="encrypt the databases (SQLCipher: pip install 'parley[encrypted]'): new ones "
        "are created encrypted, existing plaintext ones are encrypted in place",
    )
    p.set_defaults(run=run)


def _fail(message: str) -> None:
    print(f"parley chat: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    if (error := bad_relay(args.relays)) is not None:
        _fail(error)
        return 2
    if args.ws is not None and not 0 <= args.ws < 65536:
        _fail(f"--ws: not a port: {args.ws}")
        return 2
    if args.headless and args.name is not None and not args.name.strip():
        _fail("--name is empty")
        return 2
    token = getattr(args, "ws_token", None)
    if args.ws is not None:
        problem = api_bind_problem(args.ws_host, token)
        if problem is not None:
            _fail(problem)
            return 2
    return asyncio.run(chat_main(args))


def database_files(prefix: Path) -> list[Path]:
    return [Path(f"{prefix}_chat.db"), Path(f"{prefix}_agent.db")]


def database_key(args: argparse.Namespace, *, ask: bool) -> str | None:
    """The passphrase: --db-key-file, $PARLEY_DB_KEY, or (with `ask`) a prompt."""
    if args.db_key_file is not None:
        return Path(args.db_key_file).read_text().rstrip("\r\n") or None
    if os.environ.get("PARLEY_DB_KEY"):
        return os.environ["PARLEY_DB_KEY"]
    if ask and sys.stdin.isatty():
        import getpass

        key = getpass.getpass("database passphrase: ")
        if args.encrypt_db and getpass.getpass("again: ") != key:
            raise DatabaseKeyError("the two passphrases differ")
        return key or None
    return None


def encrypt_existing(prefix: Path, key: str) -> list[Path]:
    """Encrypt the plaintext databases of `prefix` in place; returns those it encrypted."""
    done: list[Path] = []
    for path in database_files(prefix):
        if not path.exists() or path.stat().st_size == 0:
            continue
        try:
            sqlite3.connect(f"file:{path}?mode=ro", uri=True).execute(
                "SELECT count(*) FROM sqlite_master"
            ).fetchone()
        except sqlite3.DatabaseError:
            continue  # encrypted already
        encrypt_file(path, key)
        done.append(path)
    return done


async def open_chat(args: argparse.Namespace, prefix: Path) -> ChatController:
    key = database_key(args, ask=args.encrypt_db and not args.headless)
    if args.encrypt_db:
        if key is None:
            raise DatabaseKeyError(
                "--encrypt-db needs a passphrase: --db-key-file or $PARLEY_DB_KEY"
            )
        for path in encrypt_existing(prefix, key):
            print(f"encrypted {path}", flush=True)
    config = ChatConfig(db_prefix=prefix, relays=list(args.relays), database_key=key)
    try:
        return await ChatController.open(config)
    except DatabaseKeyError:
        if key is not None or args.headless or not sys.stdin.isatty():
            raise
    config.database_key = database_key(args, ask=True)  # encrypted: ask for the passphrase
    return await ChatController.open(config)


async def chat_main(args: argparse.Namespace) -> int:
    prefix: Path = args.db_prefix
    try:
        if prefix == default_db_prefix():
            private_directory(prefix.parent)  # parley's own: private, even if it was not
        else:
            prefix.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        chat = await open_chat(args, prefix)
    except (AgentError, OSError, sqlite3.Error, DatabaseKeyError) as e:
        _fail(f"cannot open {prefix}: {e}")
        return 1
    try:
        # headless behind the API, a bot may create the user itself (/_create user)
        api_creates = args.headless and args.ws is not None
        name = await ensure_user(
            chat, args.name, interactive=not args.headless, optional=api_creates
        )
        if name is None and (args.name is not None or not api_creates):
            return 2
        tap = None
        if args.ws is not None and not args.headless:
            from parley.terminal.tee import tap_events

            tap = tap_events(chat)  # before the API server takes chat.events
        await chat.start()
        api: ApiServer | None = None
        if args.ws is not None:
            api = await start_api(chat, args.ws_host, args.ws, getattr(args, "ws_token", None))
            if api is None:
                return 1
        try:
            url = f"ws://{_host(args.ws_host)}:{api.port}" if api is not None else None
            if args.headless:
                await _headless(chat, name, url)
            else:
                assert name is not None  # only a headless chat may start without a user
                await _interactive(chat, name, url, tap)
        finally:
            if api is not None:
                await api.close()
    finally:
        await chat.close()
    return 0


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def ensure_user(
    chat: ChatController, name: str | None, *, interactive: bool, optional: bool = False
) -> str | None:
    """The active user's display name, creating the user on the first start: from --name,
    or asked for on the terminal. None (after saying why) if there is none; with
    `optional`, None without complaint when there is no user and no --name."""
    user = await chat.active_user()
    if user is not None:
        if name is not None and name != user.display_name:
            print(
                f"(you are {user.display_name}; --name is only used on the first start)",
                flush=True,
            )
        return user.display_name
    if name is not None:
        try:
            return (await chat.create_user(name)).display_name
        except ChatError as e:
            _fail(f"--name: {e}")
            return None
    if optional:
        return None
    if not interactive:
        _fail("no user yet: on the first start give your display name with --name NAME")
        return None
    from prompt_toolkit import PromptSession

    ask: PromptSession[str] = PromptSession()
    print("Welcome to parley. Choose the name your contacts will see (you can't change it here).")
    while True:
        try:
            answer = await ask.prompt_async("display name: ")
        except (EOFError, KeyboardInterrupt):
            _fail("no user created")
            return None
        try:
            return (await chat.create_user(answer.strip())).display_name
        except ChatError as e:
            print(f"error: {e}", flush=True)


def api_bind_problem(host: str, token: str | None) -> str | None:
    """Why the API may not be served on `host` (None if it may): an address other than
    loopback needs a token."""
    if token is not None and not token:
        return "--ws-token is empty"
    try:
        from parley.api.server import bind_problem
    except ImportError:
        return None  # start_api says the API is missing
    problem = bind_problem(host, token)
    return None if problem is None else f"--ws-host {problem}"


async def start_api(
    chat: ChatController, host: str, port: int, token: str | None = None
) -> ApiServer | None:
    try:
        module = importlib.import_module("parley.api.server")
        serve: ServeApi = module.serve_api
    except (ImportError, AttributeError):
        _fail("the WebSocket API (parley.api.server) is not available in this installation")
        return None
    try:
        if token:  # (serve_api's keyword; the plain call keeps simple stand-ins working)
            server: ApiServer = await cast(Any, serve)(chat, host, port, token=token)
            return server
        return await serve(chat, host, port)
    except (OSError, ValueError) as e:
        _fail(f"cannot serve the API on {host}:{port}: {e}")
        return None


def _on_signals(handler: Callable[[], object]) -> Callable[[], None]:
    """Call `handler` on SIGTERM and SIGINT; returns the function that undoes it."""
    loop = asyncio.get_running_loop()
    sigs = (signal.SIGTERM, signal.SIGINT)
    for sig in sigs:
        loop.add_signal_handler(sig, handler)

    def undo() -> None:
        for sig in sigs:
            loop.remove_signal_handler(sig)

    return undo


async def _headless(chat: ChatController, name: str | None, url: str | None) -> None:
    from parley.terminal.headless import run_headless

    if name is not None:
        print(USER_PREFIX + name, flush=True)
    else:
        print(NO_USER_LINE, flush=True)
    stop = asyncio.Event()
    undo = _on_signals(stop.set)
    try:
        if url is not None:
            print(API_PREFIX + url, flush=True)
            await stop.wait()
            return
        commands = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin
        await run_headless(chat, events=chat.events, commands=commands, out=sys.stdout, stop=stop)
    finally:
        undo()


async def _interactive(
    chat: ChatController,
    name: str,
    url: str | None,
    tap: asyncio.Queue[Any] | None,
) -> None:
    from parley.terminal.app import TerminalApp

    banner = [f"you are {name}; /help lists the commands, /q quits"]
    if url is not None:
        banner.append(f"bot API: {url}")
    app = TerminalApp(chat, events=tap if url is not None else chat.events, banner=banner)
    task = asyncio.create_task(app.run(), name="terminal")
    undo = _on_signals(task.cancel)
    try:
        await asyncio.wait([task])
    finally:
        undo()
    if not task.cancelled():
        error = task.exception()
        if error is not None:
            raise error
