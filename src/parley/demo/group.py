"""Forming the group: the host becomes every other client's contact, then invites each
one, who joins; each step is repeated through kills (a retried step that was committed
before is recognised)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from parley.chat.controller import ChatError
from parley.demo.clients import Member, call, try_call
from parley.demo.config import GROUP

# wait(predicate, what): poll until the predicate holds (the scenario's deadline around it)
Wait = Callable[[Callable[[], Awaitable[bool]], str], Awaitable[None]]


async def pair_contacts(host: Member, others: list[Member]) -> None:
    """The host's invitation link to each of the others, used by them."""

    async def pair(m: Member) -> None:
        _, link = await call(host, "create_invitation", timeout=60)
        if not link:
            raise RuntimeError(f"no invitation link for {m.name}")
        await call(m, "connect", link=link)

    await asyncio.gather(*(pair(m) for m in others))


async def contacts_missing(host: Member, others: list[Member]) -> list[str]:
    """What is missing for the host and every other client to be ready contacts."""
    missing: list[str] = []
    mine = await try_call(host, "contacts")
    ok = {c["name"] for c in mine or () if c["status"] == "ready"}
    missing += [f"{host.name} has no ready contact {m.name}" for m in others if m.name not in ok]
    for m in others:
        theirs = await try_call(m, "contacts")
        if theirs is None or not any(
            c["name"] == host.name and c["status"] == "ready" for c in theirs
        ):
            state = [(c["name"], c["status"]) for c in theirs or ()]
            missing.append(f"{m.name} has no ready contact {host.name} (has {state})")
    return missing


async def invite(host: Member, m: Member, wait: Wait, delay: float = 0.0) -> None:
    """Steps 1 and 2 of the group dance for one member, through faults."""
    if delay > 0:
        await asyncio.sleep(delay)
    try:
        await call(host, "add_member", group_name=GROUP, contact_name=m.name)
    except ChatError as e:
        if "already a member" not in str(e):  # a retry after a kill: it was committed
            raise

    async def invited() -> bool:
        groups = await try_call(m, "groups")
        return groups is not None and any(g["name"] == GROUP for g in groups)

    await wait(invited, f"{m.name} invited")
    try:
        await call(m, "join_group", group_name=GROUP)
    except ChatError as e:
        if "no pending invitation" not in str(e):  # joined before a kill
            raise
