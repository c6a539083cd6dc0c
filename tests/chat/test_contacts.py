from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TypeVar

import pytest

from parley.agent import events as aev
from parley.agent.agent import Agent, AgentConfig
from parley.chat import events as cev
from parley.chat.controller import ChatController
from parley.protocol import chat as cp
from parley.relay.server import RelayServer
from tests.agent.conftest import FAST_RETRY
from tests.chat.conftest import MakeChat, expect, make_contacts
from tests.relay.conftest import FAST

E = TypeVar("E", bound=aev.Event)


async def test_contacts_connect_and_talk(relay: RelayServer, make_chat: MakeChat) -> None:
    relays = [str(relay.address)]
    alice = await make_chat("alice", relays)
    bob = await make_chat("bob", relays)
    await make_contacts(alice, bob)
    assert [c.name for c in await alice.contacts()] == ["bob"]
    assert [c.name for c in await bob.contacts()] == ["alice"]
    await alice.send_contact_message("bob", "hi bob")
    got = await expect(bob, cev.NewChatItem)
    assert got.item.text == "hi bob" and got.item.contact and got.item.contact.name == "alice"
    await bob.send_contact_message("alice", "hi alice")
    got = await expect(alice, cev.NewChatItem)
    assert got.item.text == "hi alice"


async def test_contacts_connect_taking_turns_offline(relay: RelayServer, tmp_path: Path) -> None:
    """Inviter and joiner are never online together; each turn ends when that side is idle."""
    from parley.testing.waiting import wait_for_condition
    from tests.chat.conftest import chat_config

    relays = [str(relay.address)]
    configs = {n: chat_config(tmp_path / n, relays) for n in ("alice", "bob")}

    async def turn(name: str) -> ChatController:
        chat = await ChatController.open(configs[name])
        if await chat.active_user() is None:
            await chat.create_user(name)
        await chat.start()
        return chat

    async def idle(chat: ChatController) -> None:
        async def nothing_pending() -> bool:
            report, continuations = await chat.status()
            return not (report.commands or report.deliveries or continuations)

        await wait_for_condition(nothing_pending, 15)

    alice = await turn("alice")
    _, link = await alice.create_invitation()
    assert link is not None
    await idle(alice)
    await alice.close()

    bob = await turn("bob")
    await bob.connect(link)
    await idle(bob)
    await bob.close()

    alice = await turn("alice")  # the confirmation waited on the relay: alice allows
    await wait_for_condition(lambda: _has_contact(alice, "bob"), 15)
    await idle(alice)
    await alice.close()

    bob = await turn("bob")  # bob gets alice's confirmation, secures its queue, says HELLO

    async def hello_sent() -> bool:
        statuses = await bob.agent.subscribe_all()
        return [(st.rcv_queue, st.snd_queue) for st in statuses] == [("secured", "active")]

    await wait_for_condition(hello_sent, 15)
    await bob.close()

    alice = await turn("alice")
    await expect(alice, cev.ContactConnected)
    await alice.send_contact_message("bob", "you were away")
    await idle(alice)
    await alice.close()

    bob = await turn("bob")
    await expect(bob, cev.ContactConnected)
    got = await expect(bob, cev.NewChatItem)
    assert got.item.text == "you were away"
    await bob.close()


async def _has_contact(chat: ChatController, name: str) -> bool:
    return any(c.name == name for c in await chat.contacts())


async def test_bad_links_and_unknown_names_are_refused(
    relay: RelayServer, make_chat: MakeChat
) -> None:
    import pytest

    from parley.chat.controller import ChatError

    alice = await make_chat("alice", [str(relay.address)])
    for link in ("", "hello", "parley:/invite#AAAA", "parley:/invite#" + "x" * 300):
        with pytest.raises(ChatError):
            await alice.connect(link)
    with pytest.raises(ChatError, match="no contact"):
        await alice.send_contact_message("nobody", "hi")
    with pytest.raises(ChatError, match="no group"):
        await alice.send_group_message("nothing", "hi")
    with pytest.raises(ChatError, match="cannot send"):
        await alice.send_group_message("nothing", "x" * 20_000)
    assert await alice.contacts() == []


async def _agent_event(agent: Agent, kind: type[E], timeout: float = 15.0) -> E:
    async with asyncio.timeout(timeout):
        while True:
            e = await agent.next_event()
            if isinstance(e.event, kind):
                return e.event


@pytest.mark.parametrize(
    ("case", "info"),
    [
        ("info lost", cp.encode_chat_message(cp.make(cp.XOk(cp.Profile("alice"))))),
        ("no profile", cp.encode_chat_message(cp.make(cp.XMsgNew(cp.TextContent("hi"))))),
        ("bad info", b"not a chat message"),
    ],
)
async def test_a_contact_connection_is_ready_only_with_its_contact(
    relay: RelayServer, make_chat: MakeChat, tmp_path: Path, case: str, info: bytes
) -> None:
    """CON on a contact connection that has no contact (its INFO was lost, or carried no
    profile): the contact is made from the peer's info the agent kept, or the connection is
    failed with the reason; it is never `ready` with no one behind it."""
    relays = [str(relay.address)]
    bob = await make_chat("bob", relays)
    inviter = await Agent.open(
        AgentConfig(database=tmp_path / "inviter.db", relays=relays, retry=FAST_RETRY, client=FAST)
    )
    try:
        if case == "info lost":  # bob's chat misses the INFO event

            async def lost(agent_conn: str, info: bytes) -> None:
                return None

            bob._subscriber.on_info = lost  # type: ignore[method-assign]
        handled = asyncio.Event()
        original = bob._subscriber.on_con

        async def on_con(agent_conn: str) -> None:
            await original(agent_conn)
            handled.set()

        bob._subscriber.on_con = on_con  # type: ignore[method-assign]

        conn = await inviter.create_connection_async("c1")
        link = (await _agent_event(inviter, aev.Inv)).link
        connection_id = await bob.connect(link)
        conf = await _agent_event(inviter, aev.Conf)
        await inviter.allow_connection_async("a1", conn, conf.conf_id, info)
        await _agent_event(inviter, aev.Con)
        async with asyncio.timeout(15):
            await handled.wait()

        status, error = await bob._db.run(
            lambda c: c.execute(
                "SELECT status, last_error FROM connections WHERE connection_id = ?",
                (connection_id,),
            ).fetchone()
        )
        if case == "info lost":
            got = await expect(bob, cev.ContactConnected)
            assert got.contact.name == "alice"
            assert [c.name for c in await bob.contacts()] == ["alice"]
            assert (status, error) == ("ready", None)
        else:
            failed = await expect(bob, cev.ConnectionFailed)
            assert failed.connection_id == connection_id
            assert await bob.contacts() == []
            assert status == "failed"
            assert error == failed.reason
            assert ("x.msg.new" if case == "no profile" else "bad info") in error
    finally:
        await inviter.close()
