"""Admin hosts without relays (a real chat store, a recording agent): what a member accepts
from whom when any admin may introduce newcomers, and an admin's side of step 3."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.chat import events as cev
from parley.chat import groups, handshake, recovery, store
from parley.chat.model import (
    C_READY,
    CAT_INVITEE,
    CAT_POST,
    CAT_PRE,
    CT_READY,
    K_CONTACT,
    K_MEMBER_GROUP,
    M_ACCEPTED,
    M_CONNECTED,
    SIDE_HOST,
    ChatError,
)
from parley.protocol import chat as cp
from tests.chat.bench import Bench, Group, member_group, ready_connection

EVE = cp.MemberInfo(cp.new_member_id(), "member", cp.Profile("eve"))
LINKS = cp.IntroInvitation("parley:/invite#group", "parley:/invite#direct")


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    b = await Bench.open(tmp_path / "cath_chat.db")
    yield b
    await b.close()


async def cath_in_team(bench: Bench, me_role: str = "member") -> tuple[Group, dict[str, int]]:
    """cath joined #team through alice (owner); bob (admin) and dan (member) were
    introduced to her and are connected."""

    def setup(c: sqlite3.Connection) -> tuple[Group, dict[str, int]]:
        group = member_group(c, "cath", host="alice")
        assert group.host is not None
        store.set_member(c, group.me, role=me_role)
        rows = {"alice": group.host}
        for name, role in (("bob", "admin"), ("dan", "member")):
            rows[name] = store.insert_member(
                c,
                group.group_id,
                cp.new_member_id(),
                role,
                CAT_PRE,
                M_CONNECTED,
                name,
                introduced_by=group.host,
            )
            ready_connection(c, K_MEMBER_GROUP, rows[name], f"{name}-conn")
        return group, rows

    return await bench.read(setup)


async def refusals(bench: Bench) -> list[str]:
    return [e.reason for e in bench.drain() if isinstance(e, cev.GroupMessageRefused)]


async def test_a_newcomer_is_announced_by_an_admin_only(bench: Bench) -> None:
    group, rows = await cath_in_team(bench)
    await bench.receive("dan-conn", cp.XGrpMemNew(EVE))  # a plain member
    assert await refusals(bench) == [
        "x.grp.mem.new refused: a member cannot add members (admins and owners can)"
    ]
    owner_eve = cp.MemberInfo(EVE.member_id, "owner", EVE.profile)
    await bench.receive("bob-conn", cp.XGrpMemNew(owner_eve))  # above the admin's role
    assert await refusals(bench) == ["x.grp.mem.new refused: an admin cannot add a member as owner"]
    assert await bench.read(lambda c: store.member_by_id(c, group.group_id, EVE.member_id)) is None

    await bench.receive("bob-conn", cp.XGrpMemNew(EVE))
    (announced,) = bench.drain()
    assert isinstance(announced, cev.MemberAnnounced) and announced.member.name == "eve"
    eve = await bench.read(lambda c: store.member_by_id(c, group.group_id, EVE.member_id))
    assert eve is not None and eve.category == CAT_POST and eve.introduced_by == rows["bob"]


async def test_only_the_newcomers_host_forwards_its_links(bench: Bench) -> None:
    group, _ = await cath_in_team(bench)
    await bench.receive("bob-conn", cp.XGrpMemNew(EVE))
    bench.drain()
    # alice (the owner, and cath's own host) did not introduce eve: a second introducer
    await bench.receive("host-conn", cp.XGrpMemFwd(EVE, LINKS))
    assert await refusals(bench) == [
        "x.grp.mem.fwd refused: eve was introduced to us by another member"
    ]
    await bench.receive("dan-conn", cp.XGrpMemFwd(EVE, LINKS))
    assert len(await refusals(bench)) == 1
    assert bench.agent.of_kind("join") == []
    await bench.receive("bob-conn", cp.XGrpMemFwd(EVE, LINKS))
    joins = bench.agent.of_kind("join")
    assert sorted(str(j[2][0]) for j in joins) == sorted(
        [LINKS.group_conn_req, LINKS.direct_conn_req]
    )
    # a member is never introduced to itself, nor are we
    me = await bench.read(lambda c: store.member(c, group.me))
    assert me is not None
    about_me = cp.MemberInfo(me.member_id, "member", cp.Profile("cath"))
    await bench.receive("bob-conn", cp.XGrpMemFwd(about_me, LINKS))
    assert len(await refusals(bench)) == 1


async def test_a_forward_is_taken_from_the_pairs_host_only(bench: Bench) -> None:
    await cath_in_team(bench)
    await bench.receive("bob-conn", cp.XGrpMemNew(EVE))
    bench.drain()
    hello = cp.make(cp.XMsgNew(cp.TextContent("hi from eve")))
    await bench.receive("host-conn", cp.XGrpMsgForward(EVE.member_id, hello))  # not eve's host
    assert bench.drain() == []
    await bench.receive("bob-conn", cp.XGrpMsgForward(EVE.member_id, hello))
    (item,) = bench.drain()
    assert isinstance(item, cev.NewChatItem) and item.item.text == "hi from eve"
    assert item.item.author is not None and item.item.author.name == "eve"


async def test_an_introduction_needs_an_admin_host(bench: Bench) -> None:
    group, _ = await cath_in_team(bench)
    assert group.host is not None
    host_row = group.host
    await bench.read(lambda c: store.set_member(c, host_row, role="member"))
    await bench.receive("host-conn", cp.XGrpMemIntro(EVE))
    assert await refusals(bench) == ["x.grp.mem.intro refused: a member cannot add members"]
    assert bench.agent.of_kind("create") == []


async def test_only_an_owner_deletes_the_group(bench: Bench) -> None:
    group, _ = await cath_in_team(bench)
    await bench.receive("bob-conn", cp.XGrpDel())
    assert await refusals(bench) == ["x.grp.del refused: only owners delete the group"]
    g = await bench.read(lambda c: store.group_by_id(c, group.group_id))
    assert g is not None and g.status == "active"
    await bench.receive("host-conn", cp.XGrpDel())
    (deleted,) = bench.drain()
    assert isinstance(deleted, cev.GroupDeleted)


async def test_an_invitation_from_a_plain_member_is_refused(bench: Bench) -> None:
    def contact(c: sqlite3.Connection) -> tuple[store.UserRow, store.ContactRow]:
        user = store.insert_user(c, "gina", "")
        cid = store.insert_contact(c, user.user_id, "cath", "", CT_READY)
        conn = store.insert_connection(c, K_CONTACT, contact_id=cid, status=C_READY)
        store.set_connection(c, conn, agent_conn_id="cath-contact")
        found = store.contact_by_id(c, cid)
        assert found is not None
        return user, found

    await bench.read(contact)

    def invitation(host_role: str, role: str = "member") -> cp.XGrpInv:
        return cp.XGrpInv(
            cp.MemberIdRole(cp.new_member_id(), host_role),  # type: ignore[arg-type]
            cp.MemberIdRole(cp.new_member_id(), role),  # type: ignore[arg-type]
            "parley:/invite#link",
            cp.GroupProfile("team"),
        )

    await bench.receive("cath-contact", invitation("member"))
    (refused,) = bench.drain()
    assert isinstance(refused, cev.GroupInvitationRefused)
    assert refused.reason == "a member cannot add members (admins and owners can)"
    await bench.receive("cath-contact", invitation("admin", "owner"))
    (refused,) = bench.drain()
    assert isinstance(refused, cev.GroupInvitationRefused)
    admin = invitation("admin")
    await bench.receive("cath-contact", admin)
    (invited,) = bench.drain()
    assert isinstance(invited, cev.ReceivedGroupInvitation)
    # a second invitation to that group (another admin's, or the same one again)
    again = cp.XGrpInv(
        admin.from_member,
        cp.MemberIdRole(cp.new_member_id(), "member"),
        "parley:/invite#other",
        admin.group_profile,
    )
    await bench.receive("cath-contact", again)
    (refused,) = bench.drain()
    assert isinstance(refused, cev.GroupInvitationRefused) and "already" in refused.reason
    assert len(await bench.read(lambda c: store.live_group_ids(c, 1))) == 1


def eve_invited(c: sqlite3.Connection, group: Group) -> int:
    """Eve, invited by us, accepted: her group connection is up to its CON ("eve-conn")."""
    row = store.insert_member(
        c, group.group_id, EVE.member_id, "member", CAT_INVITEE, M_ACCEPTED, "eve"
    )
    conn = ready_connection(c, K_MEMBER_GROUP, row, "eve-conn")
    store.set_connection(c, conn, status="accepted")
    return row


async def test_an_admin_hosts_its_invitee(bench: Bench) -> None:
    """An admin (not the creator) is eve's host: on eve's CON it announces eve to
    everyone it is connected to (its own host included) and introduces them all to eve;
    eve's messages go on to them until they are connected."""
    group, rows = await cath_in_team(bench, me_role="admin")
    eve_row = await bench.read(lambda c: eve_invited(c, group))
    await bench.con("eve-conn")
    for conn in ("host-conn", "bob-conn", "dan-conn"):
        (new,) = bench.agent.messages(conn)
        assert isinstance(new.params, cp.XGrpMemNew) and new.params.member_info == EVE
    intros = bench.agent.messages("eve-conn")
    assert all(isinstance(m.params, cp.XGrpMemIntro) for m in intros)
    assert sorted(m.params.member_info.profile.display_name for m in intros) == [  # type: ignore[union-attr]
        "alice",
        "bob",
        "dan",
    ]
    hosted = await bench.read(lambda c: store.intros_on_side(c, SIDE_HOST))
    assert {(i.re_member, i.to_member) for i in hosted} == {
        (eve_row, rows[n]) for n in ("alice", "bob", "dan")
    }

    await bench.receive("eve-conn", cp.XMsgNew(cp.TextContent("hello")))
    for conn in ("host-conn", "bob-conn", "dan-conn"):
        fwd = bench.agent.messages(conn)[-1]
        assert isinstance(fwd.params, cp.XGrpMsgForward)
        assert fwd.params.member_id == EVE.member_id
    # alice's message goes on to eve, not back to alice nor to the others
    before = {c: len(bench.agent.messages(c)) for c in ("bob-conn", "dan-conn")}
    await bench.receive("host-conn", cp.XMsgNew(cp.TextContent("from alice")))
    fwd = bench.agent.messages("eve-conn")[-1]
    assert isinstance(fwd.params, cp.XGrpMsgForward) and fwd.params.member_id != EVE.member_id
    assert {c: len(bench.agent.messages(c)) for c in before} == before

    # a plain member cannot host: its own side refuses the invitation and the link
    await bench.read(lambda c: store.set_member(c, group.me, role="member"))
    user = group.user
    with pytest.raises(ChatError, match="a member cannot add members"):
        await bench.read(lambda c: groups.hosting(c, groups.named(c, user, "team"), "member"))


HIGH, LOW = "z" * 16, "A" * 16


async def with_invitee_and_newcomer(bench: Bench, eve_id: str) -> tuple[Group, dict[str, int]]:
    """cath (an admin) hosts eve (connected); frank, dan's newcomer, is connecting to cath
    (its two connections accepted, CON to come)."""
    group, rows = await cath_in_team(bench, me_role="admin")

    def setup(c: sqlite3.Connection) -> None:
        rows["eve"] = store.insert_member(
            c, group.group_id, eve_id, "member", CAT_INVITEE, M_CONNECTED, "eve"
        )
        ready_connection(c, K_MEMBER_GROUP, rows["eve"], "eve-conn")
        frank_id = LOW if eve_id == HIGH else HIGH
        rows["frank"] = store.insert_member(
            c,
            group.group_id,
            frank_id,
            "member",
            CAT_POST,
            "memIntroInvited",
            "frank",
            introduced_by=rows["dan"],
        )
        for kind, agent_conn in ((K_MEMBER_GROUP, "frank-g"), ("member_direct", "frank-d")):
            conn = ready_connection(c, kind, rows["frank"], agent_conn)
            store.set_connection(c, conn, status="accepted")

    await bench.read(setup)
    return group, rows


async def test_a_host_catches_up_with_a_newcomer_of_another_host(bench: Bench) -> None:
    """eve's member id is the greater: cath (eve's host) introduces frank to eve once."""
    _, rows = await with_invitee_and_newcomer(bench, HIGH)
    await bench.con("frank-g")
    await bench.con("frank-d")
    (intro,) = bench.agent.messages("eve-conn")
    assert isinstance(intro.params, cp.XGrpMemIntro)
    assert intro.params.member_info.profile.display_name == "frank"
    hosted = await bench.read(lambda c: store.intros_on_side(c, SIDE_HOST))
    assert [(i.re_member, i.to_member) for i in hosted] == [(rows["eve"], rows["frank"])]
    # frank's own host (dan) is never introduced to frank, nor to its own newcomer
    assert bench.agent.messages("dan-conn") == []


async def test_the_other_host_catches_up_when_its_newcomers_id_is_greater(bench: Bench) -> None:
    await with_invitee_and_newcomer(bench, LOW)
    await bench.con("frank-g")
    await bench.con("frank-d")
    assert bench.agent.messages("eve-conn") == []


async def test_no_catch_up_once_the_pair_said_it_connected(bench: Bench) -> None:
    """eve tells cath it connected to frank (dan introduced them): noted, no intro."""
    await with_invitee_and_newcomer(bench, HIGH)
    await bench.receive("eve-conn", cp.XGrpMemCon(LOW))
    await bench.con("frank-g")
    await bench.con("frank-d")
    assert bench.agent.messages("eve-conn") == []


async def test_an_introduction_of_a_member_another_host_introduced(bench: Bench) -> None:
    """cath (a newcomer of alice) knows frank from dan; alice's introduction of frank (a
    host catching up) is not acted on twice: answered with x.grp.mem.con once connected."""
    group, rows = await cath_in_team(bench)

    def frank(c: sqlite3.Connection) -> None:
        rows["frank"] = store.insert_member(
            c,
            group.group_id,
            LOW,
            "member",
            CAT_POST,
            "memIntroInvited",
            "frank",
            introduced_by=rows["dan"],
        )

    await bench.read(frank)
    about = cp.MemberInfo(LOW, "member", cp.Profile("frank"))
    await bench.receive("host-conn", cp.XGrpMemIntro(about))
    assert bench.drain() == [] and bench.agent.calls == []
    await bench.read(lambda c: store.set_member(c, rows["frank"], status=M_CONNECTED))
    await bench.receive("host-conn", cp.XGrpMemIntro(about))
    (con,) = bench.agent.messages("host-conn")
    assert con.params == cp.XGrpMemCon(LOW)


async def test_a_removed_admins_link_stops_working(bench: Bench) -> None:
    group, _ = await cath_in_team(bench, me_role="admin")

    def link(c: sqlite3.Connection) -> int:
        conn = store.insert_connection(c, "address", status=C_READY)
        store.set_connection(c, conn, agent_conn_id="link-conn")
        return store.insert_contact_link(c, group.user.user_id, conn, "active", group.group_id)

    link_id = await bench.read(link)
    me = await bench.read(lambda c: store.member(c, group.me))
    assert me is not None
    await bench.receive("host-conn", cp.XGrpMemDel(me.member_id))
    events = bench.drain()
    assert {type(e) for e in events} == {cev.UserRemoved, cev.GroupLinkDeleted}
    row = await bench.read(lambda c: store.contact_link(c, link_id))
    assert row is not None and row.status == "deleted"
    assert any(k == "delete" and args == ("link-conn",) for k, _, args in bench.agent.calls)


async def test_an_admin_host_reintroduces_a_stalled_pair(bench: Bench) -> None:
    """The re-introduction timer works for any host's introductions, not the creator's."""
    group, rows = await cath_in_team(bench, me_role="admin")
    await bench.read(lambda c: eve_invited(c, group))
    await bench.con("eve-conn")
    first = len(bench.agent.messages("eve-conn"))
    bob = await bench.read(lambda c: store.member(c, rows["bob"]))
    assert bob is not None
    await bench.receive("eve-conn", cp.XGrpMemCon(bob.member_id))  # one pair is done
    later = store.now() + 3600
    count, fx = await bench.read(lambda c: recovery.reintroduce_stale(c, bench.config, later, None))
    await bench.engine.perform(fx)
    assert count == 2  # alice and dan, again
    again = bench.agent.messages("eve-conn")[first:]
    assert sorted(m.params.member_info.profile.display_name for m in again) == ["alice", "dan"]  # type: ignore[union-attr]


async def test_a_group_link_of_a_plain_member_is_refused_by_the_joiner(bench: Bench) -> None:
    """gina joined a link; the answer says it is a group link hosted by a member: she
    fails the connection with the reason instead of joining."""

    def joining(c: sqlite3.Connection) -> int:
        store.insert_user(c, "gina", "")
        conn = store.insert_connection(c, K_CONTACT)  # (a request sent: still new)
        store.set_connection(c, conn, agent_conn_id="link-conn", link="parley:/contact#x")
        return conn

    conn_id = await bench.read(joining)

    def link_mem(host_role: str) -> bytes:
        info = cp.XGrpLinkMem(
            cp.GroupProfile("team"),
            cp.MemberInfo(cp.new_member_id(), host_role, cp.Profile("cath")),  # type: ignore[arg-type]
            cp.MemberIdRole(cp.new_member_id(), "member"),
        )
        return cp.encode_chat_message(cp.make(info))

    await bench.apply(lambda c: handshake.on_conf(c, "link-conn", "conf-1", link_mem("member")))
    conn = await bench.read(lambda c: store.connection(c, conn_id))
    assert conn is not None and conn.status == "failed"
    assert conn.last_error == (
        "x.grp.link.mem refused: a member cannot add members (admins and owners can)"
    )
    assert bench.agent.of_kind("allow") == []
    assert await bench.read(lambda c: store.live_group_ids(c, 1)) == []
