"""An admin hosts a newcomer through a SIGKILL at a step of the introductions (its own, the
newcomer's or a member's): the group still reaches the full mesh and every message
arrives exactly once, with no step reported as failed."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from parley.chat import events as cev
from parley.relay.server import RelayServer
from tests.chat.harness import assert_recovered, clients, contacts, wait_mesh

# A created #team; B is an admin, C a member; B hosts the newcomer D
CRASH_POINTS = [
    ("B", "con:invitee"),  # step 3: D connected, x.grp.mem.new/intro not yet sent
    ("D", "k:intro_link_created@2"),  # step 4: both links, x.grp.mem.inv not yet sent
    ("B", "msg:x.grp.mem.inv"),  # step 5: links stored, x.grp.mem.fwd not yet sent
    ("A", "msg:x.grp.mem.fwd"),  # step 6 at the creator: joins not yet issued
]


@pytest.mark.parametrize(
    ("victim", "point"), CRASH_POINTS, ids=[f"{v}-{p}" for v, p in CRASH_POINTS]
)
async def test_an_admin_hosted_newcomer_after_sigkill(
    relay: RelayServer, tmp_path: Path, victim: str, point: str
) -> None:
    procs = clients(tmp_path, [str(relay.address)], ["A", "B", "C", "D"])
    a, b, c, d = (procs[n] for n in "ABCD")
    try:
        for p in procs.values():
            await p.start()
        await contacts(a, b)
        await contacts(a, c)
        await contacts(b, d)
        await a.call("create_group", name="team")
        for p, role in ((b, "admin"), (c, "member")):
            await a.call("add_member", group_name="team", contact_name=p.name, role=role)
            await p.expect(cev.ReceivedGroupInvitation, lambda e: e.group.name == "team")
            await p.call("join_group", group_name="team")
        await wait_mesh({"A": a, "B": b, "C": c}, "team")

        target = procs[victim]
        await target.stop()
        await target.start(crash_at=point)

        async def join() -> None:
            with contextlib.suppress(ConnectionError):  # B may be the one that crashes
                await b.call("add_member", group_name="team", contact_name="D")
            await d.expect(cev.ReceivedGroupInvitation, lambda e: e.group.name == "team", 60)
            with contextlib.suppress(ConnectionError):
                await d.call("join_group", group_name="team")

        joining = asyncio.create_task(join())
        assert await target.wait_exit(60) < 0, f"{victim} never reached {point}"
        await target.start()  # the same database files, no crash point this time
        await joining

        await wait_mesh(procs, "team", 90)
        hosts = {
            m["name"]: m["category"]
            for m in await d.call("members", group_name="team")
            if m["category"] != "user"
        }
        assert hosts == {"A": "pre", "B": "host", "C": "pre"}
        alarms = (cev.MemberFailed, cev.ConnectionFailed, cev.GroupMessageRefused)
        await assert_recovered(procs, "team", point, alarms)
    finally:
        for p in procs.values():
            await p.kill()
