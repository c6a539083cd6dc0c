"""Groups that finish forming through crashes (SIGKILL at every step), offline phases and
relay restarts; every group message arrives exactly once at every member."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.chat import events as cev
from parley.relay.server import RelayServer
from parley.testing.process import RelayProcess
from parley.testing.waiting import wait_for_condition
from tests.chat.harness import (
    assert_exactly_once,
    assert_recovered,
    clients,
    connected_to,
    contacts,
    invite,
    wait_mesh,
)

# (who crashes, where): every step of DESIGN section 4's table, host A, newcomer B, member C
CRASH_POINTS = [
    ("A", "k:member_invitation_created"),  # step 1: link made, x.grp.inv not yet sent
    ("B", "k:group_joined"),  # step 2: joined, waiting for CON
    ("A", "conf:x.grp.acpt"),  # step 3: confirmation seen, allow not yet issued
    ("A", "k:allowed"),  # step 3: allowed, event not yet acknowledged
    ("A", "con:invitee"),  # step 3: B connected, x.grp.mem.new/intro not yet sent
    ("B", "con:host"),  # B is in the group
    ("B", "msg:x.grp.mem.intro"),  # step 4: intro stored, creates not yet issued
    ("B", "k:intro_link_created"),  # step 4: between the two INVs
    ("B", "k:intro_link_created@2"),  # step 4: both links, x.grp.mem.inv not yet sent
    ("A", "msg:x.grp.mem.inv"),  # step 5: links stored, x.grp.mem.fwd not yet sent
    ("C", "msg:x.grp.mem.new"),  # C learns of B
    ("C", "msg:x.grp.mem.fwd"),  # step 6: joins not yet issued
    ("C", "issued:join"),  # step 6: the agent has the join, the chat has not noted it
    ("C", "k:joined"),  # step 6: one join done
    ("B", "conf:x.grp.mem.info"),  # step 7: allow not yet issued
    ("B", "issued:allow"),  # step 7: the agent has the allow, the chat has not noted it
    ("B", "k:allowed"),  # step 7: allowed
    ("B", "con:member"),  # step 7: connected, x.grp.mem.con not yet sent
    ("C", "con:member"),
    ("A", "outbox:sent"),  # a message handed to the agent, outbox row not yet deleted
]


@pytest.fixture
async def relay_proc(tmp_path: Path) -> AsyncIterator[RelayProcess]:
    proc = RelayProcess(tmp_path / "relay")
    await proc.start()
    yield proc
    await proc.kill()


@pytest.mark.parametrize(
    ("victim", "point"), CRASH_POINTS, ids=[f"{v}-{p}" for v, p in CRASH_POINTS]
)
async def test_group_completes_after_sigkill_at_each_step(
    relay: RelayServer, tmp_path: Path, victim: str, point: str
) -> None:
    procs = clients(tmp_path, [str(relay.address)], ["A", "B", "C"])
    a, b, c = procs["A"], procs["B"], procs["C"]
    try:
        for p in procs.values():
            await p.start()
        await contacts(a, b)
        await contacts(a, c)
        await a.call("create_group", name="team")
        await invite(a, c, "team")
        await wait_mesh({"A": a, "C": c}, "team")

        target = procs[victim]
        await target.stop()
        await target.start(crash_at=point)
        joining = asyncio.create_task(invite(a, b, "team"))
        assert await target.wait_exit(60) < 0, f"{victim} never reached {point}"
        await target.start()  # the same database files, no crash point this time
        await joining

        await wait_mesh(procs, "team", 90)
        await assert_recovered(procs, "team", point)
    finally:
        for p in procs.values():
            await p.kill()


async def test_four_members_in_phases_with_the_host_offline(
    relay: RelayServer, tmp_path: Path
) -> None:
    procs = clients(tmp_path, [str(relay.address)], ["A", "B", "C", "D"])
    a, b, c, d = (procs[n] for n in "ABCD")
    sent: dict[str, list[str]] = {n: [] for n in procs}

    async def say(name: str, text: str) -> None:
        await procs[name].call("send_group_message", group_name="team", text=text)
        sent[name].append(text)

    try:
        for p in procs.values():
            await p.start()
        for p in (b, c, d):
            await contacts(a, p)
        await a.call("create_group", name="team")
        await invite(a, b, "team")
        await invite(a, c, "team")
        await wait_mesh({"A": a, "B": b, "C": c}, "team")
        await say("B", "phase 1 from B")

        for p in procs.values():  # everyone restarts on the same files between phases
            await p.stop()
            await p.start()

        await invite(a, d, "team")

        async def forwarded() -> bool:  # B and C have D's links: the host's part is done
            for p in (b, c):
                members = await p.call("members", group_name="team")
                if not any(m["name"] == "D" and m["connection"] for m in members):
                    return False
            return True

        await wait_for_condition(forwarded, 60, 0.1, "the host never forwarded D's links")
        await a.kill()  # the host is offline while the pairs connect
        await wait_for_condition(lambda: connected_to(d, "team", ["B", "C"]), 60, 0.2)
        await wait_for_condition(lambda: connected_to(b, "team", ["D"]), 60, 0.2)
        await wait_for_condition(lambda: connected_to(c, "team", ["D"]), 60, 0.2)
        await say("D", "D while the host is away")

        await b.kill()  # then B is offline too
        await say("C", "C while A and B are away")
        await a.start()
        await b.start()
        await wait_mesh(procs, "team", 90)
        await say("A", "A is back")
        early = {"D": {("B", "phase 1 from B")}}  # D joined after it
        await assert_exactly_once(procs, "team", sent, before_joining=early)
    finally:
        for p in procs.values():
            await p.kill()


async def test_relay_restart_while_six_members_form(
    tmp_path: Path, relay_proc: RelayProcess
) -> None:
    assert relay_proc.address is not None
    names = ["A", "B", "C", "D", "E", "F"]
    procs = clients(tmp_path, [str(relay_proc.address)], names)
    host = procs["A"]
    try:
        for p in procs.values():
            await p.start()
        for n in names[1:]:
            await contacts(host, procs[n])
        await host.call("create_group", name="team")
        for i, n in enumerate(names[1:]):
            await invite(host, procs[n], "team")
            if i == 2:  # mid-way: the relay is killed and comes back on the same store
                await relay_proc.kill()
                await relay_proc.start()
        await wait_mesh(procs, "team", 120)
        sent = {n: [f"hello from {n}"] for n in names}
        for n, p in procs.items():
            await p.call("send_group_message", group_name="team", text=sent[n][0])
        await assert_exactly_once(procs, "team", sent)
        joined = [e for e in host.history if isinstance(e, cev.JoinedGroupMember)]
        assert sorted(e.member.name for e in joined) == names[1:]
    finally:
        for p in procs.values():
            await p.kill()


def _intro_statuses(db: Path) -> list[str]:
    """The host's introductions, read from its database file (as an operator could)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT status FROM introductions WHERE side = 'host' ORDER BY intro_id"
            )
        ]


async def test_stale_introduction_is_sent_again(relay: RelayServer, tmp_path: Path) -> None:
    procs = clients(tmp_path, [str(relay.address)], ["A", "B", "C"])
    a, b, c = procs["A"], procs["B"], procs["C"]
    host_db = tmp_path / "A_chat.db"
    try:
        for p in procs.values():
            await p.start()
        await contacts(a, b)
        await contacts(a, c)
        await a.call("create_group", name="team")
        await invite(a, c, "team")
        await wait_mesh({"A": a, "C": c}, "team")

        await c.kill()  # C misses the first forward of B's links
        await invite(a, b, "team")
        await wait_for_condition(lambda: _intro_statuses(host_db) == ["fwd"], 30, 0.1)

        assert await a.call("reintroduce_stale", older_than=0) == 1
        # B offers its links again and the host forwards them again
        await wait_for_condition(lambda: _intro_statuses(host_db) == ["fwd"], 30, 0.1)

        with sqlite3.connect(f"file:{tmp_path / 'B_chat.db'}?mode=ro", uri=True) as bdb:
            dropped = bdb.execute(
                "SELECT count(*) FROM connections WHERE status = 'deleted'"
            ).fetchone()[0]
        assert dropped == 0  # B's connections were under way: the same links, offered again
        await c.start()  # C sees the same links forwarded twice and joins them once
        await wait_mesh(procs, "team", 60)
        sent = {n: [f"{n} after the re-introduction"] for n in procs}
        for n, p in procs.items():
            await p.call("send_group_message", group_name="team", text=sent[n][0])
        await assert_exactly_once(procs, "team", sent)
    finally:
        for p in procs.values():
            await p.kill()
