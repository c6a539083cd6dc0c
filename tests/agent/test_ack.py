"""Acknowledging received messages: the ACK leaves when the client calls, not after a commit;
without a completion event (`event=False`) only an ACK that could not be sent is a command."""

from __future__ import annotations

from parley.agent import events as ev
from parley.agent.agent import Agent
from parley.agent.model import new_id
from parley.protocol.address import RelayAddress
from parley.relay.server import RelayServer
from parley.testing.proxy import FaultProxy
from parley.testing.waiting import wait_for_condition
from tests.agent.conftest import MakeAgent, connect_pair, expect


async def events_until_marker(agent: Agent) -> list[ev.AgentEvent]:
    """Every event `agent` reports before the INV of a fresh command (a marker)."""
    marker = "marker:" + new_id()
    await agent.create_connection_async(marker)
    seen: list[ev.AgentEvent] = []
    while True:
        e = await agent.next_event(timeout=10)
        if e.corr_id == marker:
            return seen
        seen.append(e)


async def test_ack_without_event_delivers_the_next_and_leaves_nothing(
    relay: RelayServer, make_agent: MakeAgent
) -> None:
    address = str(relay.address)
    a, b = await make_agent("a", [address]), await make_agent("b", [address])
    a_conn, b_conn = await connect_pair(a, b)
    for n in range(5):
        await a.send_message(a_conn, b"m%d" % n)
    bodies = []
    for _ in range(5):  # the relay gives the next only after the ACK of the one before
        _, msg = await expect(b, ev.Msg, b_conn)
        bodies.append(msg.body)
        await b.ack_message_async(f"ack:{msg.msg_id}", b_conn, msg.msg_id, event=False)
    assert bodies == [b"m%d" % n for n in range(5)]
    report = await b.pending()
    assert report.commands == []
    assert not [e for e in await events_until_marker(b) if e.corr_id.startswith("ack:")]

    await b.close()  # the acknowledgements are stored: nothing is shown again
    b = await make_agent("b", [address])
    assert not [e for e in await events_until_marker(b) if isinstance(e.event, ev.Msg)]


async def first_acked_while_cut_off(
    relay: RelayServer, proxy: FaultProxy, make_agent: MakeAgent
) -> tuple[Agent, str, str]:
    """Alice sends bob, who reaches the relay only through `proxy`, "one" and "two"; bob
    acknowledges "one" (event=False) while the proxy refuses him, so its ACK fails.
    Returns bob, his conn id and his relay address."""
    via_proxy = str(RelayAddress(relay.address.fingerprint, "127.0.0.1", proxy.port))
    a = await make_agent("a", [str(relay.address)])
    b = await make_agent("b", [via_proxy])
    a_conn, b_conn = await connect_pair(a, b)
    await a.send_message(a_conn, b"one")
    await a.send_message(a_conn, b"two")
    _, first = await expect(b, ev.Msg, b_conn)
    assert first.body == b"one"
    proxy.refuse()
    proxy.cut()
    await b.ack_message_async("ack:1", b_conn, first.msg_id, event=False)
    return b, b_conn, via_proxy


async def test_ack_without_event_that_cannot_be_sent_becomes_a_command(
    relay: RelayServer, make_agent: MakeAgent
) -> None:
    async with FaultProxy(relay.address.host, relay.address.port) as proxy:
        b, b_conn, _ = await first_acked_while_cut_off(relay, proxy, make_agent)

        async def ack_pending() -> bool:
            commands = (await b.pending()).commands
            return [(c.corr_id, c.kind) for c in commands] == [("ack:1", "ACK")]

        await wait_for_condition(ack_pending, message="the failed ACK is no pending command")
        proxy.refuse(False)
        _, second = await expect(b, ev.Msg, b_conn, timeout=20)  # the command got through
        assert second.body == b"two"
        await b.ack_message_async("ack:2", b_conn, second.msg_id, event=False)
        assert (await b.pending()).commands == []
        assert not [e for e in await events_until_marker(b) if e.corr_id.startswith("ack:")]


async def test_an_ack_sent_but_not_stored_is_repeated_harmlessly(
    relay: RelayServer, make_agent: MakeAgent
) -> None:
    """What a crash between the early ACK and its commit leaves: the relay has the ACK, the
    agent's store does not. The message is shown again, acknowledged again (the relay says
    NO_MSG), and the queue goes on."""
    address = str(relay.address)
    a, b = await make_agent("a", [address]), await make_agent("b", [address])
    a_conn, b_conn = await connect_pair(a, b)
    await a.send_message(a_conn, b"one")
    await a.send_message(a_conn, b"two")
    _, first = await expect(b, ev.Msg, b_conn)
    sent = b._inbound.send_ack_early(b_conn, first.msg_id)  # the ACK alone, nothing stored
    assert sent is not None
    await sent
    await b.close()

    b = await make_agent("b", [address])
    again: ev.Msg | None = None
    second: ev.Msg | None = None
    while second is None:
        _, msg = await expect(b, ev.Msg, b_conn)
        if msg.msg_id == first.msg_id:
            assert again is None, "shown twice after the restart"
            again = msg
            await b.ack_message_async("ack:again", b_conn, msg.msg_id, event=False)
        else:
            second = msg
    assert again is not None and again.body == b"one"
    assert second.body == b"two"
    await b.ack_message_async("ack:2", b_conn, second.msg_id)
    e, _ = await expect(b, ev.Ok)
    assert e.corr_id == "ack:2"
    assert (await b.pending()).commands == []


async def test_an_acknowledged_message_the_relay_still_holds_is_not_shown_again(
    relay: RelayServer, make_agent: MakeAgent
) -> None:
    """What a crash (or close) after the acknowledgement's commit but before the relay had
    the ACK leaves: the relay pushes the message again at the next subscription; the agent
    acknowledges it at once without showing it, and the queue goes on."""
    async with FaultProxy(relay.address.host, relay.address.port) as proxy:
        b, b_conn, via_proxy = await first_acked_while_cut_off(relay, proxy, make_agent)
        await b.close()  # the ACK did not reach the relay (and may not be a command yet)
        proxy.refuse(False)

        b = await make_agent("b", [via_proxy])
        _, msg = await expect(b, ev.Msg, b_conn, timeout=20)
        assert msg.body == b"two", "an acknowledged message was shown again"
