"""The host's side of the introductions (DESIGN §4 steps 3, 5 and 7's end) without relays:
a real chat store, the real engine, a recording agent."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.chat import events as cev
from parley.chat import recovery, store
from parley.chat.model import (
    CAT_INVITEE,
    I_CONNECTED,
    I_FWD,
    I_SENT,
    K_MEMBER_GROUP,
    M_ACCEPTED,
    M_COMPLETE,
    M_CONNECTED,
    SIDE_HOST,
)
from parley.protocol import chat as cp
from tests.chat.bench import Bench, member_group, ready_connection

BOB_ID, CATH_ID = cp.new_member_id(), cp.new_member_id()
IDS = {"bob": BOB_ID, "cath": CATH_ID}


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Bench]:
    """Alice created #team; cath is in it; bob accepted the invitation (CON to come)."""
    bench = await Bench.open(tmp_path / "alice_chat.db")

    def setup(c: sqlite3.Connection) -> None:
        group = member_group(c, "alice", host=None)
        for name, status in (("cath", M_COMPLETE), ("bob", M_ACCEPTED)):
            row = store.insert_member(
                c, group.group_id, IDS[name], "member", CAT_INVITEE, status, name
            )
            ready_connection(c, K_MEMBER_GROUP, row, f"{name}-conn")
        store.set_connection(c, 2, status="accepted")  # bob's, before its CON

    await bench.read(setup)
    yield bench
    await bench.close()


async def test_the_invitee_is_announced_and_introduced(host: Bench) -> None:
    await host.con("bob-conn")
    (new,) = host.agent.messages("cath-conn")
    assert isinstance(new.params, cp.XGrpMemNew) and new.params.member_info.member_id == (BOB_ID)
    (intro,) = host.agent.messages("bob-conn")
    assert isinstance(intro.params, cp.XGrpMemIntro)
    assert intro.params.member_info.profile.display_name == "cath"
    (joined,) = host.drain()
    assert isinstance(joined, cev.JoinedGroupMember) and joined.member.status == M_CONNECTED
    rows = await host.read(lambda c: store.intros_on_side(c, SIDE_HOST))
    assert [(r.status, r.msg_id, r.attempts) for r in rows] == [(I_SENT, intro.msg_id, 1)]
    assert rows[0].retry_delay is not None
    assert 90 * 0.8 <= rows[0].retry_delay <= 90 * 1.2


async def test_links_are_forwarded_and_the_pair_completes(host: Bench) -> None:
    await host.con("bob-conn")
    links = cp.IntroInvitation("link-g", "link-d")
    await host.receive("bob-conn", cp.XGrpMemInv(CATH_ID, links))
    fwd = host.agent.messages("cath-conn")[-1]
    assert isinstance(fwd.params, cp.XGrpMemFwd) and fwd.params.member_intro == links
    assert [r.status for r in await host.read(lambda c: store.intros_on_side(c, SIDE_HOST))] == [
        I_FWD
    ]
    # until the pair says it connected, the host forwards bob's messages to cath
    await host.receive("bob-conn", cp.XMsgNew(cp.TextContent("hi")))
    forward = host.agent.messages("cath-conn")[-1]
    assert isinstance(forward.params, cp.XGrpMsgForward)
    await host.receive("bob-conn", cp.XGrpMemCon(CATH_ID))
    assert [r.status for r in await host.read(lambda c: store.intros_on_side(c, SIDE_HOST))] == [
        I_CONNECTED
    ]
    bob = await host.read(lambda c: store.member(c, 3))
    assert bob is not None and bob.status == M_COMPLETE
    sent = len(host.agent.sent)
    await host.receive("bob-conn", cp.XMsgNew(cp.TextContent("again")))
    assert len(host.agent.sent) == sent  # connected: no more forwarding
    # a repeated x.grp.mem.inv after the pair connected forwards nothing
    await host.receive("bob-conn", cp.XGrpMemInv(CATH_ID, links))
    assert len(host.agent.sent) == sent


async def test_a_stale_pair_is_introduced_again_with_a_new_row(host: Bench) -> None:
    await host.con("bob-conn")
    (first,) = await host.read(lambda c: store.intros_on_side(c, SIDE_HOST))
    count, _ = await host.read(
        lambda c: recovery.reintroduce_stale(c, host.config, store.now(), older_than=None)
    )
    assert count == 0  # not stale yet
    count, fx = await host.read(
        lambda c: recovery.reintroduce_stale(c, host.config, store.now(), older_than=0.0)
    )
    await host.engine.perform(fx)
    assert count == 1
    (again,) = await host.read(lambda c: store.intros_on_side(c, SIDE_HOST))
    assert again.msg_id != first.msg_id and again.attempts == 2
    intros = [m for m in host.agent.messages("bob-conn") if isinstance(m.params, cp.XGrpMemIntro)]
    assert len(intros) == 2 and intros[1].msg_id == again.msg_id != first.msg_id
