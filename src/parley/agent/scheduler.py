"""The scheduler: runs the book's commands, one at a time per connection, in workers per relay.

Each relay is a worker (NEW and JOIN, which choose their relay, share the worker
`CHOOSE_RELAY`) running at most `commands_per_relay` commands at once, so an unreachable
relay holds up only its own commands. Temporary errors are retried with backoff and jitter
(forever, except for a synchronous call's single attempt); permanent ones end the command
with ERR.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from parley.agent import events as ev
from parley.agent import store
from parley.agent.book import CommandBook
from parley.agent.model import CHOOSE_RELAY, AgentConfig, AgentError
from parley.agent.store import CommandRow, now
from parley.agent.tasks import Tasks
from parley.crypto import CryptoError
from parley.protocol import agent as ap
from parley.relay.errors import PermanentRelayError, TemporaryRelayError

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Scheduler:
    book: CommandBook
    config: AgentConfig
    rng: random.Random
    tasks: Tasks
    run_step: Callable[[CommandRow], Awaitable[None]]
    _running_per_worker: dict[str, int] = field(
        init=False, default_factory=lambda: defaultdict(int)
    )

    async def run(self) -> None:
        """Start every due command whose connection and worker are free; sleep until the next."""
        book = self.book
        while True:
            t = now()
            wait: float | None = None
            seen_conns: set[str] = set()
            for cmd in sorted(book.commands.values(), key=lambda x: x.seq):
                first_for_conn = cmd.conn_id not in seen_conns
                seen_conns.add(cmd.conn_id)
                if not first_for_conn or cmd.corr_id in book.running:
                    continue
                if cmd.next_try > t:
                    delay = cmd.next_try - t
                    wait = delay if wait is None else min(wait, delay)
                    continue
                worker = cmd.relay or CHOOSE_RELAY
                if self._running_per_worker[worker] >= self.config.commands_per_relay:
                    continue
                book.running.add(cmd.corr_id)
                self._running_per_worker[worker] += 1
                self.tasks.spawn(self._run(cmd, worker))
            book.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await book.wake.wait()

    async def _run(self, cmd: CommandRow, worker: str) -> None:
        try:
            await self.run_step(cmd)
        except TemporaryRelayError as e:
            await self._retry_later(cmd, str(e))
        except (PermanentRelayError, AgentError, CryptoError, ap.EnvelopeError) as e:
            code = e.code.value if isinstance(e, PermanentRelayError) and e.code else ""
            await self._fail(cmd, str(e), code)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("command %s %s failed", cmd.kind, cmd.corr_id)
            await self._fail(cmd, f"internal error: {e!r}", "INTERNAL")
        finally:
            self.book.running.discard(cmd.corr_id)
            self._running_per_worker[worker] -= 1
            self.book.wake.set()

    async def _retry_later(self, cmd: CommandRow, error: str) -> None:
        if cmd.args.once:
            await self._fail(cmd, error, "TEMPORARY")
            return
        cmd.attempts += 1
        cmd.last_error = error
        cmd.next_try = now() + self.config.retry.delay(cmd.attempts, self.rng)
        await self.book.db.run(lambda c: store.save_command_retry(c, cmd))

    async def _fail(self, cmd: CommandRow, reason: str, code: str) -> None:
        log.info("command %s %s failed: %s", cmd.kind, cmd.corr_id, reason)
        await self.book.complete(cmd, ev.Err(reason, code))
