"""Agents in real processes, killed with SIGKILL: nothing is lost, nothing is shown twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.agent import events as ev
from parley.relay.server import RelayServer
from parley.testing.agent_process import AgentProcess


@pytest.fixture
async def procs(
    relay: RelayServer, tmp_path: Path
) -> AsyncIterator[tuple[AgentProcess, AgentProcess]]:
    relays = [str(relay.address)]
    a, b = AgentProcess(tmp_path / "a.db", relays), AgentProcess(tmp_path / "b.db", relays)
    await a.start()
    await b.start()
    yield a, b
    await a.kill()
    await b.kill()


def is_event(kind: type[ev.Event], corr_id: str | None = None, conn_id: str | None = None):  # type: ignore[no-untyped-def]
    def check(e: ev.AgentEvent) -> bool:
        return (
            isinstance(e.event, kind)
            and (corr_id is None or e.corr_id == corr_id)
            and (conn_id is None or e.conn_id == conn_id)
        )

    return check


async def test_unacknowledged_completion_event_is_replayed_after_sigkill(
    procs: tuple[AgentProcess, AgentProcess],
) -> None:
    a, _ = procs
    conn = await a.call("create", corr="create-1")
    first = await a.expect(is_event(ev.Inv, "create-1"))
    await a.kill()  # after the completion event, before ack_command_event
    await a.start()
    again = await a.expect(is_event(ev.Inv, "create-1"))
    assert again == first and again.conn_id == conn
    await a.call("ack_event", corr="create-1")
    await a.kill()
    await a.start()
    await a.call("create", corr="create-2")  # a marker: INV for create-1 must not come first
    e = await a.expect(is_event(ev.Inv))
    assert e.corr_id == "create-2"


async def test_connection_completes_across_sigkills(
    procs: tuple[AgentProcess, AgentProcess],
) -> None:
    a, b = procs
    a_conn = await a.call("create", corr="c1")
    inv = (await a.expect(is_event(ev.Inv, "c1"))).event
    assert isinstance(inv, ev.Inv)
    b_conn = await b.call("join", corr="j1", link=inv.link, info=b"bob")
    await a.kill()  # the joiner's confirmation waits on the relay
    await a.start()
    conf = (await a.expect(is_event(ev.Conf, conn_id=a_conn))).event
    assert isinstance(conf, ev.Conf) and conf.info == b"bob"
    await a.call("allow", corr="a1", conn=a_conn, conf=conf.conf_id, info=b"alice")
    await b.kill()
    await b.start()
    await b.expect(is_event(ev.Con, conn_id=b_conn))
    await a.expect(is_event(ev.Con, conn_id=a_conn))

    await a.call("send", conn=a_conn, body=b"one")
    msg = (await b.expect(is_event(ev.Msg, conn_id=b_conn))).event
    assert isinstance(msg, ev.Msg) and msg.body == b"one"
    await b.kill()  # before acknowledging: the message is shown again after the restart
    await b.start()
    again = (await b.expect(is_event(ev.Msg, conn_id=b_conn))).event
    assert again == msg
    await b.call("ack_msg", corr="ack1", conn=b_conn, msg_id=msg.msg_id)
    await b.expect(is_event(ev.Ok, "ack1"))
    await a.call("send", conn=a_conn, body=b"two")
    nxt = (await b.expect(is_event(ev.Msg, conn_id=b_conn))).event
    assert isinstance(nxt, ev.Msg) and nxt.body == b"two" and nxt.msg_id == msg.msg_id + 1


async def connected(a: AgentProcess, b: AgentProcess) -> tuple[str, str]:
    a_conn = await a.call("create", corr="c1")
    inv = (await a.expect(is_event(ev.Inv, "c1"))).event
    assert isinstance(inv, ev.Inv)
    b_conn = await b.call("join", corr="j1", link=inv.link, info=b"bob")
    conf = (await a.expect(is_event(ev.Conf, conn_id=a_conn))).event
    assert isinstance(conf, ev.Conf)
    await a.call("allow", corr="a1", conn=a_conn, conf=conf.conf_id, info=b"alice")
    await b.expect(is_event(ev.Con, conn_id=b_conn))
    await a.expect(is_event(ev.Con, conn_id=a_conn))
    return a_conn, b_conn


async def test_an_acknowledgement_without_event_survives_sigkill(
    procs: tuple[AgentProcess, AgentProcess],
) -> None:
    """Killed right after an event-less acknowledgement returned (the relay may or may not
    have had the ACK yet): the acknowledged message is not shown again, the next ones
    come, each once."""
    a, b = procs
    a_conn, b_conn = await connected(a, b)
    for body in (b"one", b"two", b"three"):
        await a.call("send", conn=a_conn, body=body)
    first = (await b.expect(is_event(ev.Msg, conn_id=b_conn))).event
    assert isinstance(first, ev.Msg) and first.body == b"one"
    await b.call("ack_msg", corr="ack1", conn=b_conn, msg_id=first.msg_id, event=False)
    await b.kill()
    await b.start()
    bodies: list[bytes] = []
    while len(bodies) < 2:
        msg = (await b.expect(is_event(ev.Msg, conn_id=b_conn))).event
        assert isinstance(msg, ev.Msg)
        bodies.append(msg.body)
        corr = f"ack{msg.msg_id}"
        await b.call("ack_msg", corr=corr, conn=b_conn, msg_id=msg.msg_id, event=False)
    assert bodies == [b"two", b"three"]
    assert (await b.call("pending"))["commands"] == []

