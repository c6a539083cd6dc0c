"""`parley relay`: run a relay until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from parley.cli.common import add_command
from parley.protocol.address import DEFAULT_PORT
from parley.relay.config import ADDRESS_PREFIX, RelayConfig
from parley.relay.server import RelayServer, raise_open_file_limit


def default_store() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "parley" / "relay"


# the options that set a RelayConfig field of the same name, the field's default theirs:
# (option, field, type, help)
CONFIG_OPTIONS: tuple[tuple[str, str, type, str], ...] = (
    ("--host", "host", str, "address to listen on (default 127.0.0.1)"),
    ("--port", "port", int, f"default {DEFAULT_PORT}"),
    ("--public-host", "public_host", str, "host name to put in the printed address"),
    ("--public-port", "public_port", int, "port to put in the printed address (behind a NAT)"),
    (
        "--database-url",
        "database_url",
        str,
        "keep queues and messages in PostgreSQL (postgresql://...; needs parley[postgres]) "
        "instead of SQLite in the store directory",
    ),
    ("--quota", "quota", int, "messages per queue"),
    (
        "--message-ttl",
        "message_ttl",
        float,
        "seconds a message is kept before it expires (default 21 days)",
    ),
    (
        "--max-message-size",
        "max_message_body",
        int,
        "largest message body in bytes (at most the protocol's 16000)",
    ),
    (
        "--max-connections",
        "max_connections",
        int,
        "connections at once (lowered at start to fit the open-file limit)",
    ),
    (
        "--max-connections-per-address",
        "max_connections_per_address",
        int,
        "connections at once from one IPv4 address or IPv6 /64 (0: no limit)",
    ),
    (
        "--idle-timeout",
        "idle_timeout",
        float,
        "seconds without traffic before a connection is closed",
    ),
    (
        "--idle-unsubscribed-timeout",
        "idle_unsubscribed_timeout",
        float,
        "seconds without a command (PING aside) before a connection with no subscription is closed",
    ),
    (
        "--max-auth-failures",
        "max_auth_failures",
        int,
        "failed authenticators (or NEW passwords) before a connection is closed",
    ),
    (
        "--max-queues",
        "max_queues",
        int,
        "queues on the relay; NEW over it gets QUOTA (default: none)",
    ),
    (
        "--max-stored-bytes",
        "max_stored_bytes",
        int,
        "message body bytes stored; SEND over it gets QUOTA (default: none)",
    ),
    (
        "--cache-bytes",
        "cache_bytes",
        int,
        "message bodies kept in memory, in bytes (default 64 MiB)",
    ),
    (
        "--metrics-port",
        "metrics_port",
        int,
        "serve Prometheus metrics on this port (needs parley[metrics]; default: off)",
    ),
    (
        "--metrics-host",
        "metrics_host",
        str,
        "address for the metrics endpoint (default 127.0.0.1)",
    ),
)


def add_parser(commands: Any) -> None:
    defaults = RelayConfig(store=Path("."))
    p = add_command(commands, "relay", "run a relay", "Run a parley relay (SQLite store).")
    p.add_argument(
        "--store",
        type=Path,
        default=default_store(),
        help="directory for keys, certificates and the queue database "
        "(default $XDG_DATA_HOME/parley/relay)",
    )
    for option, name, kind, text in CONFIG_OPTIONS:
        metavar = option.removeprefix("--").replace("-", "_").upper()
        default = getattr(defaults, name)
        p.add_argument(option, dest=name, type=kind, default=default, metavar=metavar, help=text)
    p.add_argument(
        "--create-password",
        default=os.environ.get("PARLEY_RELAY_CREATE_PASSWORD") or None,
        help="NEW (creating a queue) needs this password "
        "(default: $PARLEY_RELAY_CREATE_PASSWORD; unset: anyone may create queues)",
    )
    p.add_argument(
        "--stats-interval",
        type=float,
        default=300.0,
        help="seconds between stats lines and stats.json updates (0 turns them off)",
    )
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> RelayConfig:
    fields = {name: getattr(args, name) for _, name, _, _ in CONFIG_OPTIONS}
    return RelayConfig(store=args.store, create_password=args.create_password, **fields)


STATS_FILE = "stats.json"


async def report_stats(server: RelayServer, store: Path, interval: float) -> None:
    """Every `interval` seconds: one summary line on stdout and `stats.json` in the store."""
    if interval <= 0:
        return
    while True:
        await asyncio.sleep(interval)
        st = server.snapshot()
        data = dataclasses.asdict(st)
        print(
            f"stats: {st.connections} connections, {st.queues} queues, "
            f"{st.messages_stored} messages stored ({st.bytes_stored} bytes), "
            f"{st.messages_sent} sent and "
            f"{st.messages_delivered} delivered since start, {st.commits} commits, "
            f"errors {st.errors or 'none'}, {st.connections_rejected} connections refused, "
            f"{st.auth_failures} auth failures",
            flush=True,
        )
        tmp = store / (STATS_FILE + ".tmp")
        tmp.write_text(json.dumps({"time": time.time(), **data}, indent=1))
        tmp.replace(store / STATS_FILE)


async def serve(config: RelayConfig, interval: float = 300.0) -> None:
    raised = raise_open_file_limit()
    server = RelayServer(config)
    await server.start()
    print(ADDRESS_PREFIX + server.address.with_password(), flush=True)
    print(f"store: {config.store.resolve()}  (Ctrl-C or SIGTERM to stop)", flush=True)
    if raised is not None:
        before, now = raised
        print(
            f"open files: {now}"
            + (f" (raised from {before})" if now != before else "")
            + f"; at most {server.max_connections} connections"
            + (
                f" (lowered from {config.max_connections} to fit)"
                if server.max_connections < config.max_connections
                else ""
            ),
            flush=True,
        )
    if server.metrics_port is not None:
        print(f"metrics: http://{config.metrics_host}:{server.metrics_port}/metrics", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reporter = asyncio.create_task(report_stats(server, config.store, interval))
    try:
        await stop.wait()
    finally:
        reporter.cancel()
        await server.stop()
        print("relay stopped", flush=True)


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """asyncio.run, on uvloop when it is installed (`pip install 'parley[fast]'`)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ValueError as e:
        print(f"parley relay: {e}", file=sys.stderr)
        return 2
    run_loop(serve(config, args.stats_interval))
    return 0
