"""Real `parley` processes for tests and demos: start, wait until ready, SIGKILL, restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from parley.protocol.address import RelayAddress
from parley.relay.config import ADDRESS_PREFIX


class ProcessError(RuntimeError):
    pass


class RelayProcess:
    """`parley relay` in a subprocess on a fixed store; keeps its port across restarts."""

    def __init__(
        self,
        store: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        extra_args: list[str] | None = None,
    ) -> None:
        self.store = store
        self.host = host
        self.port = port
        self.extra_args = extra_args or []
        self.address: RelayAddress | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.output: list[str] = []

    async def start(self, timeout: float = 20.0) -> RelayAddress:
        if self.proc is not None and self.proc.returncode is None:
            raise ProcessError("relay process already running")
        args = [
            sys.executable,
            "-m",
            "parley",
            "relay",
            "--store",
            str(self.store),
            "--host",
            self.host,
            "--port",
            str(self.port),
            *self.extra_args,
        ]
        self.proc = await asyncio.create_subprocess_exec(
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = (await self.proc.stdout.readline()).decode()
                    if not line:
                        raise ProcessError("relay exited: " + "".join(self.output[-20:]))
                    self.output.append(line)
                    if line.startswith(ADDRESS_PREFIX):
                        self.address = RelayAddress.parse(line[len(ADDRESS_PREFIX) :])
                        self.port = self.address.port
                        break
        except BaseException:
            await self.kill()
            raise
        self._drain = asyncio.create_task(self._collect())
        return self.address

    async def _collect(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.output.append(line.decode())

    async def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up."""
        await self._signal(signal.SIGKILL)

    async def terminate(self) -> int:
        return await self._signal(signal.SIGTERM)

    async def _signal(self, sig: int) -> int:
        proc = self.proc
        if proc is None:
            return 0
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
        code = await proc.wait()
        drain = getattr(self, "_drain", None)
        if drain is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(drain, 5)
        self.proc = None
        return code

    async def restart(self) -> RelayAddress:
        await self.kill()
        return await self.start()
