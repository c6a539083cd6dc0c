"""Groups of chat clients in real processes: form, check the mesh, count messages."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from parley.chat import events as cev
from parley.testing.chat_process import ChatProcess
from parley.testing.waiting import wait_for_condition

CONNECTED = ("memConnected", "memComplete")


def clients(tmp_path: Path, relays: list[str], names: list[str]) -> dict[str, ChatProcess]:
    return {n: ChatProcess(tmp_path / n, relays, n) for n in names}


async def contacts(a: ChatProcess, b: ChatProcess) -> None:
    _, link = await a.call("create_invitation")
    assert link
    await b.call("connect", link=link)
    await a.expect(cev.ContactConnected, lambda e: e.contact.name == b.name)
    await b.expect(cev.ContactConnected, lambda e: e.contact.name == a.name)


async def invite(host: ChatProcess, member: ChatProcess, group: str) -> None:
    """Steps 1-3: the host invites, the member joins (the rest of the dance runs by itself)."""
    # the host may be killed on purpose just after the member is added: the addition was
    # committed first, and the invitation goes out when the host is back
    with contextlib.suppress(ConnectionError):
        await host.call("add_member", group_name=group, contact_name=member.name)
    await member.expect(cev.ReceivedGroupInvitation, lambda e: e.group.name == group, 60)
    with contextlib.suppress(ConnectionError):  # likewise for the member
        await member.call("join_group", group_name=group)


async def connected_to(p: ChatProcess, group: str, others: list[str]) -> bool:
    try:
        members: list[dict[str, Any]] = await p.call("members", group_name=group)
    except (ConnectionError, TimeoutError):
        return False
    status = {m["name"]: m["status"] for m in members if m["category"] != "user"}
    return all(status.get(o) in CONNECTED for o in others)


async def wait_mesh(procs: dict[str, ChatProcess], group: str, timeout: float = 60) -> None:
    async def mesh() -> bool:
        for name, p in procs.items():
            if not await connected_to(p, group, [o for o in procs if o != name]):
                return False
        return True

    await wait_for_condition(mesh, timeout, 0.2, f"#{group} did not reach a full mesh")


async def group_texts(p: ChatProcess, group: str) -> list[tuple[str, str]]:
    """(author, text) of every message received in the group, in order."""
    items: list[dict[str, Any]] = await p.call("chat_items", group=group, count=10_000)
    return [(i["author"]["name"], i["text"]) for i in items if i["direction"] == "rcv"]


async def assert_exactly_once(
    procs: dict[str, ChatProcess],
    group: str,
    sent: dict[str, list[str]],
    timeout: float = 60,
    before_joining: dict[str, set[tuple[str, str]]] | None = None,
) -> None:
    """Every member has every other member's messages exactly once (except those sent
    before it joined, listed in `before_joining`)."""
    early = before_joining or {}

    async def complete() -> bool:
        for name, p in procs.items():
            got = await group_texts(p, group)
            want = {(a, t) for a, texts in sent.items() if a != name for t in texts}
            want -= early.get(name, set())
            if not want <= set(got):
                return False
        return True

    try:
        await wait_for_condition(complete, timeout, 0.2)
    except TimeoutError as e:
        report = {name: await group_texts(p, group) for name, p in procs.items()}
        raise AssertionError(f"not every message arrived: sent {sent}, received {report}") from e
    for name, p in procs.items():
        got = await group_texts(p, group)
        assert len(got) == len(set(got)), f"{name} saw a message twice: {got}"


async def assert_recovered(
    procs: dict[str, ChatProcess],
    group: str,
    label: str,
    alarms: tuple[type[cev.ChatEvent], ...] = (cev.MemberFailed, cev.ConnectionFailed),
) -> None:
    """After a recovery: every member sends one message ("NAME after LABEL") and every other
    member gets it exactly once, and no client reported any of `alarms` on the way."""
    sent = {n: [f"{n} after {label}"] for n in procs}
    for n, p in procs.items():
        await p.call("send_group_message", group_name=group, text=sent[n][0])
    await assert_exactly_once(procs, group, sent)
    false_alarms = [(n, e) for n, p in procs.items() for e in p.history if isinstance(e, alarms)]
    assert not false_alarms, "a recovered step was reported as " + " or ".join(
        a.__name__ for a in alarms
    )
