"""Carries out a :class:`~parley.demo.faults.FaultPlan` on the stage: random cuts and
refusals at the proxies for the plan's span, and each discrete fault (cut, outage, relay
restart, client SIGKILL) at its time, counted in the progress's :class:`FaultCounts`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

from parley.demo.faults import FaultAction, FaultPlan
from parley.demo.progress import FaultCounts
from parley.demo.stage import Stage


@dataclass(eq=False)
class FaultRunner:
    """`log` tells of each fault, `fail` of one that could not be carried out (a client that
    does not start again, a relay that does not come back); `clock` gives the scenario's
    time."""

    plan: FaultPlan
    stage: Stage
    counts: FaultCounts
    _: KW_ONLY
    relay_names: list[str]
    names: list[str]
    log: Callable[[str], None]
    fail: Callable[[BaseException], None]
    clock: Callable[[], float]
    done: asyncio.Event = field(init=False, default_factory=asyncio.Event)  # schedule over
    finished_at: float | None = field(init=False, default=None)  # when it ran to its end
    # links cut after an in-process relay stopped (not faults)
    cleanup_cuts: int = field(init=False, default=0)
    _tasks: set[asyncio.Task[None]] = field(init=False, default_factory=set)

    async def run(self) -> None:
        plan = self.plan
        proxies = self.stage.proxies
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            random_faults = plan.cut_share > 0 or plan.refuse_share > 0
            for proxy in proxies:
                if plan.cut_mean is not None:  # the links open now too: every link is cut
                    proxy.cut_random(plan.cut_share, mean=plan.cut_mean, existing=True)
                elif plan.cut_share > 0:
                    proxy.cut_random(plan.cut_share, after=plan.cut_after)
                proxy.refuse_random(plan.refuse_share)
            for action in plan.actions:
                delay = start + action.at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(self._fault(action))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if random_faults:  # random cuts and refusals go on until the end of the span
                delay = start + plan.span - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                for proxy in proxies:
                    proxy.cut_random(0.0)
                    proxy.refuse_random(0.0)
                    proxy.cancel_planned_cuts()  # no fault after the schedule
            if self._tasks:
                await asyncio.gather(*list(self._tasks))
            self.finished_at = self.clock()
            if plan.level != "none":
                self.log("fault schedule finished")
        finally:
            self.done.set()

    async def cancel(self) -> None:
        """Stop the faults under way (the run() task is the caller's to cancel)."""
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _fault(self, a: FaultAction) -> None:
        try:
            await self._inject(a)
        except Exception as e:
            what = a.describe(self.relay_names, self.names)
            self.fail(RuntimeError(f"fault {what!r} failed: {type(e).__name__}: {e}"))

    async def _inject(self, a: FaultAction) -> None:
        what = a.describe(self.relay_names, self.names)
        if a.kind == "client_kill":
            m = self.stage.members[a.target]
            async with m.lock:
                self.log(what)
                await m.kill()
                m.progress.kills += 1
                await asyncio.sleep(a.duration)
                await m.start()
                self.log(f"{m.name} is back")
            return
        relay, proxy = self.stage.relays[a.target], self.stage.proxies[a.target]
        async with self.stage.relay_locks[a.target]:
            self.log(what)
            match a.kind:
                case "cut":
                    proxy.cut()
                case "outage":
                    self.counts.outages += 1
                    proxy.refuse(True)
                    proxy.cut()
                    await asyncio.sleep(a.duration)
                    proxy.refuse(False)
                case "relay_restart":
                    await relay.stop(crash=True)
                    if not relay.as_process:
                        # RelayServer.stop() can leave sessions alive that were still in
                        # their TLS handshake when it was called (they would keep clients
                        # subscribed to the stopped instance); a process that exits has
                        # none. Cut what is left through the proxy, like the exit would.
                        self.cleanup_cuts += proxy.cut()
                    self.counts.relay_restarts += 1
                    await asyncio.sleep(a.duration)
                    await relay.start()
                    self.log(f"{self.relay_names[a.target]} is back")
