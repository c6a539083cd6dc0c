"""Contact addresses: one link many people join; each join is a contact request (REQ)
the owner accepts (a JOIN of the requester's invitation) or rejects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.agent import events as ev
from parley.agent.agent import Agent, AgentError
from parley.protocol import agent as ap
from parley.relay.server import RelayServer
from tests.agent.conftest import MakeAgent, expect
from tests.agent.contact_process import ContactAgentProcess
from tests.agent.test_crash import is_event


async def address(a: Agent, corr: str = "addr") -> tuple[str, str]:
    conn = await a.create_connection_async(corr, contact=True)
    _, inv = await expect(a, ev.Inv, conn)
    await a.ack_command_event(corr)
    assert inv.link.startswith(ap.CONTACT_PREFIX)
    return conn, inv.link


async def request(
    owner: Agent, joiner: Agent, link: str, corr: str, info: bytes
) -> tuple[str, ev.Req]:
    """The joiner joins the address; the owner gets REQ. Returns (joiner's conn, REQ)."""
    conn = await joiner.join_connection_async(corr, link, info)
    await expect(joiner, ev.Ok, conn)
    await joiner.ack_command_event(corr)
    _, req = await expect(owner, ev.Req)
    assert req.info == info
    return conn, req


async def accept(owner: Agent, joiner: Agent, joiner_conn: str, req: ev.Req, corr: str) -> str:
    """The owner accepts; the joiner allows our CONF; both see CON."""
    conn = await owner.accept_contact_async(corr, req.inv_id, b"owner's info")
    await expect(owner, ev.Ok, conn)
    await owner.ack_command_event(corr)
    _, conf = await expect(joiner, ev.Conf, joiner_conn)
    assert conf.info == b"owner's info"
    await joiner.allow_connection_async(corr + "-allow", joiner_conn, conf.conf_id, b"joiner")
    await expect(owner, ev.Con, conn)
    await expect(joiner, ev.Con, joiner_conn)
    return conn


async def test_many_join_one_address(relay: RelayServer, make_agent: MakeAgent) -> None:
    relays = [str(relay.address)]
    owner = await make_agent("owner", relays)
    addr_conn, link = await address(owner)
    for i in range(3):
        joiner = await make_agent(f"j{i}", relays)
        j_conn, req = await request(owner, joiner, link, f"join{i}", b"joiner %d" % i)
        o_conn = await accept(owner, joiner, j_conn, req, f"acc{i}")
        await owner.send_message(o_conn, b"welcome %d" % i)
        _, msg = await expect(joiner, ev.Msg, j_conn)
        assert msg.body == b"welcome %d" % i
    statuses = {s.conn_id: s for s in await owner.subscribe_all()}
    assert statuses[addr_conn].role == "contact"
    assert (await owner.pending()).commands == []


async def test_reject_repeat_and_errors(relay: RelayServer, make_agent: MakeAgent) -> None:
    relays = [str(relay.address)]
    owner = await make_agent("owner", relays)
    joiner = await make_agent("joiner", relays)
    addr_conn, link = await address(owner)
    _, req = await request(owner, joiner, link, "j1", b"me")
    await owner.reject_contact(req.inv_id)
    with pytest.raises(AgentError, match="rejected"):
        await owner.accept_contact_async("acc", req.inv_id, b"x")
    with pytest.raises(AgentError, match="no contact request"):
        await owner.reject_contact("nope")
    # bad links: clear errors, nothing made
    before = len(await joiner.subscribe_all())
    for bad, why in [
        ("simplex:/contact#/?v=2&smp=x", "SimpleX link"),
        (ap.CONTACT_PREFIX + "garbage", "corrupt contact address"),
        (link[:-10], "corrupt contact address"),
        ("http://example.com", "not a parley"),
    ]:
        with pytest.raises(AgentError, match=why):
            await joiner.join_connection_async("bad", bad, b"me")
    assert len(await joiner.subscribe_all()) == before
    # a deleted address: the request ends with ERR that says so
    await owner.delete_connection_async("del", addr_conn)
    await expect(owner, ev.Ok, addr_conn)
    conn = await joiner.join_connection_async("j2", link, b"me")
    _, err = await expect(joiner, ev.Err, conn)
    assert "does not exist" in err.reason


async def test_reused_invitation_fails_clearly(relay: RelayServer, make_agent: MakeAgent) -> None:
    relays = [str(relay.address)]
    a, b, c = [await make_agent(n, relays) for n in "abc"]
    a_conn = await a.create_connection_async("c1")
    _, inv = await expect(a, ev.Inv, a_conn)
    b_conn = await b.join_connection_async("j1", inv.link, b"b")
    _, conf = await expect(a, ev.Conf, a_conn)
    await a.allow_connection_async("a1", a_conn, conf.conf_id, b"a")
    await expect(b, ev.Con, b_conn)
    c_conn = await c.join_connection_async("j2", inv.link, b"c")
    _, err = await expect(c, ev.Err, c_conn)
    assert "used already" in err.reason


@pytest.fixture
async def procs(
    relay: RelayServer, tmp_path: Path
) -> AsyncIterator[tuple[ContactAgentProcess, ContactAgentProcess]]:
    relays = [str(relay.address)]
    o = ContactAgentProcess(tmp_path / "o.db", relays)
    j = ContactAgentProcess(tmp_path / "j.db", relays)
    await o.start()
    await j.start()
    yield o, j
    await o.kill()
    await j.kill()


async def test_contact_flow_survives_sigkill_at_each_step(
    procs: tuple[ContactAgentProcess, ContactAgentProcess],
) -> None:
    o, j = procs
    addr = await o.call("create_contact", corr="addr")
    await o.kill()  # before INV
    await o.start()
    inv = (await o.expect(is_event(ev.Inv, "addr"))).event
    assert isinstance(inv, ev.Inv) and inv.link.startswith(ap.CONTACT_PREFIX)
    await o.kill()  # INV not acknowledged: shown again, with the same link
    await o.start()
    again = (await o.expect(is_event(ev.Inv, "addr"))).event
    assert again == inv
    await o.call("ack_event", corr="addr")

    j_conn = await j.call("join", corr="j1", link=inv.link, info=b"joiner")
    await j.kill()  # the request made or not: the JOIN resumes
    await j.start()
    await j.expect(is_event(ev.Ok, "j1"))
    await j.call("ack_event", corr="j1")
    req = (await o.expect(is_event(ev.Req, conn_id=addr))).event
    assert isinstance(req, ev.Req) and req.info == b"joiner"
    await o.kill()  # REQ not answered: reported again, with the same id
    await o.start()
    again_req = (await o.expect(is_event(ev.Req, conn_id=addr))).event
    assert again_req == req

    o_conn = await o.call("accept_contact", corr="acc", inv=req.inv_id, info=b"owner")
    await o.kill()  # the JOIN of the requester's invitation resumes
    await o.start()
    with pytest.raises(AgentError, match="corr id already used"):  # a retry of the call
        await o.call("accept_contact", corr="acc", inv=req.inv_id, info=b"owner")
    await o.expect(is_event(ev.Ok, "acc", o_conn))
    conf = (await j.expect(is_event(ev.Conf, conn_id=j_conn))).event
    assert isinstance(conf, ev.Conf) and conf.info == b"owner"
    await j.kill()
    await j.start()
    conf = (await j.expect(is_event(ev.Conf, conn_id=j_conn))).event
    assert isinstance(conf, ev.Conf)
    await j.call("allow", corr="a1", conn=j_conn, conf=conf.conf_id, info=b"joiner")
    await o.expect(is_event(ev.Con, conn_id=o_conn))
    await j.expect(is_event(ev.Con, conn_id=j_conn))
    await j.call("send", conn=j_conn, body=b"hi")
    msg = (await o.expect(is_event(ev.Msg, conn_id=o_conn))).event
    assert isinstance(msg, ev.Msg) and msg.body == b"hi"
