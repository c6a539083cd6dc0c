"""Each relay command's happy path and each of its errors, against a real relay over TLS."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from parley.protocol import relay as p
from parley.protocol.address import RelayAddress
from parley.protocol.relay_auth import AuthKey
from parley.relay.client import MessageReceived, RelayClient, SubscriptionEnded
from parley.relay.errors import PermanentRelayError, RelayIdentityMismatch
from parley.relay.server import RelayServer
from parley.testing.waiting import wait_for_condition
from tests.relay.conftest import FAST, next_event, no_event, relay_config
from tests.relay.raw import RawConnection

MakeClient = Callable[[], RelayClient]


async def new_queue(c: RelayClient) -> tuple[AuthKey, p.Ids]:
    key = AuthKey.generate()
    return key, await c.create_queue(key)


def code_of(e: pytest.ExceptionInfo[PermanentRelayError]) -> p.ErrorCode | None:
    return e.value.code


async def test_queue_life_cycle(make_client: MakeClient) -> None:
    recipient, sender = make_client(), make_client()
    rkey, ids = await new_queue(recipient)
    assert len(ids.recipient_id) == 24 and len(ids.sender_id) == 24
    assert ids.recipient_id != ids.sender_id
    await recipient.subscribe(ids.recipient_id, rkey)

    await sender.send(ids.sender_id, None, b"confirmation")  # unsecured: no key
    got = await next_event(recipient, MessageReceived)
    assert got.recipient_id == ids.recipient_id and got.message.body == b"confirmation"

    skey = AuthKey.generate()
    await recipient.secure(ids.recipient_id, rkey, skey.public)
    await recipient.ack(ids.recipient_id, rkey, got.message.msg_id)
    await sender.send(ids.sender_id, skey, b"hello", flags=1)
    got = await next_event(recipient, MessageReceived)
    assert (got.message.body, got.message.flags) == (b"hello", 1)
    await recipient.ack(ids.recipient_id, rkey, got.message.msg_id)

    await recipient.delete(ids.recipient_id, rkey)
    with pytest.raises(PermanentRelayError) as e:
        await sender.send(ids.sender_id, skey, b"gone")
    assert code_of(e) == p.ErrorCode.NO_QUEUE


async def test_next_message_only_after_ack(make_client: MakeClient) -> None:
    c = make_client()
    rkey, ids = await new_queue(c)
    for i in range(3):
        await c.send(ids.sender_id, None, b"m%d" % i)
    await c.subscribe(ids.recipient_id, rkey)
    first = await next_event(c, MessageReceived)
    assert first.message.body == b"m0"
    assert await no_event(c, MessageReceived)
    with pytest.raises(PermanentRelayError) as e:
        await c.ack(ids.recipient_id, rkey, b"x" * 24)
    assert code_of(e) == p.ErrorCode.NO_MSG
    await c.ack(ids.recipient_id, rkey, first.message.msg_id)
    assert (await next_event(c, MessageReceived)).message.body == b"m1"


async def test_key_is_idempotent_but_not_replaceable(make_client: MakeClient) -> None:
    c = make_client()
    rkey, ids = await new_queue(c)
    skey = AuthKey.generate()
    await c.secure(ids.recipient_id, rkey, skey.public)
    await c.secure(ids.recipient_id, rkey, skey.public)  # the same key again: OK
    with pytest.raises(PermanentRelayError) as e:
        await c.secure(ids.recipient_id, rkey, AuthKey.generate().public)
    assert code_of(e) == p.ErrorCode.AUTH


async def test_send_authentication_rules(make_client: MakeClient) -> None:
    c = make_client()
    rkey, ids = await new_queue(c)
    skey = AuthKey.generate()
    with pytest.raises(PermanentRelayError) as e:  # authenticated SEND to an unsecured queue
        await c.send(ids.sender_id, skey, b"x")
    assert code_of(e) == p.ErrorCode.AUTH
    await c.secure(ids.recipient_id, rkey, skey.public)
    with pytest.raises(PermanentRelayError) as e:
        await c.send(ids.sender_id, None, b"x")
    assert code_of(e) == p.ErrorCode.CMD_NO_AUTH
    with pytest.raises(PermanentRelayError) as e:
        await c.send(ids.sender_id, AuthKey.generate(), b"x")
    assert code_of(e) == p.ErrorCode.AUTH
    with pytest.raises(PermanentRelayError) as e:  # the recipient key is not the sender key
        await c.send(ids.sender_id, rkey, b"x")
    assert code_of(e) == p.ErrorCode.AUTH
    await c.send(ids.sender_id, skey, b"ok")


async def test_repeated_confirmation_is_counted_apart_from_errors(
    relay: RelayServer, make_client: MakeClient
) -> None:
    """An unsigned SEND to a secured queue (a confirmation sent again after its OK was lost)
    gets `ERR CMD NO_AUTH` as before, but counts as a repeated confirmation, not an error."""
    sender, recipient = make_client(), make_client()
    rkey, ids = await new_queue(recipient)
    await sender.send(ids.sender_id, None, b"confirmation")
    await recipient.secure(ids.recipient_id, rkey, AuthKey.generate().public)
    for _ in range(2):
        with pytest.raises(PermanentRelayError) as e:
            await sender.send(ids.sender_id, None, b"confirmation")
        assert code_of(e) == p.ErrorCode.CMD_NO_AUTH  # the answer the agent relies on
    stats = relay.snapshot()
    assert stats.repeated_confirmations == 2
    assert stats.errors == {}
    raw = await RawConnection.open(relay.address)  # a recipient command without auth
    assert await raw.request(p.SUB, ids.recipient_id) == p.Err(p.ErrorCode.CMD_NO_AUTH)
    raw.close()
    stats = relay.snapshot()
    assert stats.errors == {p.ErrorCode.CMD_NO_AUTH.value: 1}
    assert stats.repeated_confirmations == 2


async def test_recipient_commands_need_the_recipient_key(make_client: MakeClient) -> None:
    c = make_client()
    _, ids = await new_queue(c)
    wrong = AuthKey.generate()
    for call in (
        c.subscribe(ids.recipient_id, wrong),
        c.secure(ids.recipient_id, wrong, wrong.public),
        c.ack(ids.recipient_id, wrong, b"x" * 24),
        c.get(ids.recipient_id, wrong),
        c.suspend(ids.recipient_id, wrong),
        c.delete(ids.recipient_id, wrong),
    ):
        with pytest.raises(PermanentRelayError) as e:
            await call
        assert code_of(e) == p.ErrorCode.AUTH
    with pytest.raises(PermanentRelayError) as e:  # the sender id is not a recipient id
        await c.subscribe(ids.sender_id, wrong)
    assert code_of(e) == p.ErrorCode.NO_QUEUE


async def test_subscriber_takeover(make_client: MakeClient) -> None:
    first, second, sender = make_client(), make_client(), make_client()
    rkey, ids = await new_queue(first)
    await first.subscribe(ids.recipient_id, rkey)
    await second.subscribe(ids.recipient_id, rkey)
    ended = await next_event(first, SubscriptionEnded)
    assert ended.recipient_id == ids.recipient_id
    assert ids.recipient_id not in first.subscriptions
    await sender.send(ids.sender_id, None, b"to the new subscriber")
    got = await next_event(second, MessageReceived)
    assert got.message.body == b"to the new subscriber"
    assert await no_event(first, MessageReceived)


async def test_get_polls_one_message(make_client: MakeClient) -> None:
    c = make_client()
    rkey, ids = await new_queue(c)
    assert await c.get(ids.recipient_id, rkey) is None
    await c.send(ids.sender_id, None, b"a")
    await c.send(ids.sender_id, None, b"b")
    msg = await c.get(ids.recipient_id, rkey)
    assert msg is not None and msg.body == b"a"
    again = await c.get(ids.recipient_id, rkey)  # not acknowledged: the same one again
    assert again == msg
    await c.ack(ids.recipient_id, rkey, msg.msg_id)
    nxt = await c.get(ids.recipient_id, rkey)
    assert nxt is not None and nxt.body == b"b"


async def test_off_suspends_sending_but_keeps_messages(make_client: MakeClient) -> None:
    c = make_client()
    rkey, ids = await new_queue(c)
    await c.send(ids.sender_id, None, b"before")
    await c.suspend(ids.recipient_id, rkey)
    with pytest.raises(PermanentRelayError) as e:
        await c.send(ids.sender_id, None, b"after")
    assert code_of(e) == p.ErrorCode.AUTH
    msg = await c.get(ids.recipient_id, rkey)
    assert msg is not None and msg.body == b"before"


async def test_quota(tmp_path: Path) -> None:
    async with RelayServer(relay_config(tmp_path, quota=3)) as relay:
        c = RelayClient(relay.address, settings=FAST)
        rkey, ids = await new_queue(c)
        for i in range(3):
            await c.send(ids.sender_id, None, b"%d" % i)
        with pytest.raises(PermanentRelayError) as e:
            await c.send(ids.sender_id, None, b"over")
        assert code_of(e) == p.ErrorCode.QUOTA
        msg = await c.get(ids.recipient_id, rkey)
        assert msg is not None
        await c.ack(ids.recipient_id, rkey, msg.msg_id)
        await c.send(ids.sender_id, None, b"room again")
        await c.close()


async def test_message_size_limit(tmp_path: Path) -> None:
    async with RelayServer(relay_config(tmp_path, max_message_body=100)) as relay:
        c = RelayClient(relay.address, settings=FAST)
        _, ids = await new_queue(c)
        await c.send(ids.sender_id, None, b"x" * 100)
        with pytest.raises(PermanentRelayError) as e:
            await c.send(ids.sender_id, None, b"x" * 101)
        assert code_of(e) == p.ErrorCode.LARGE_MSG
        await c.close()


async def test_messages_expire(tmp_path: Path) -> None:
    config = relay_config(tmp_path, message_ttl=0.3, expire_interval=0.05)
    async with RelayServer(config) as relay:
        c = RelayClient(relay.address, settings=FAST)
        rkey, ids = await new_queue(c)
        await c.send(ids.sender_id, None, b"short-lived")
        assert relay.stats.messages_stored == 1
        await wait_for_condition(lambda: relay.stats.messages_stored == 0, 5)
        assert await c.get(ids.recipient_id, rkey) is None
        await c.close()
    # and expired messages are gone from the store too, not only from memory
    async with RelayServer(relay_config(tmp_path)) as relay:
        assert relay.stats.messages_stored == 0


async def test_ping(make_client: MakeClient) -> None:
    await make_client().ping()


async def test_client_refuses_a_relay_with_another_fingerprint(relay: RelayServer) -> None:
    forged = RelayAddress("B" * 43, relay.address.host, relay.address.port)
    c = RelayClient(forged, settings=FAST)
    with pytest.raises(RelayIdentityMismatch):
        await c.connect()
    with pytest.raises(RelayIdentityMismatch):
        await c.ping()
    await c.close()


async def test_authenticator_from_another_session_is_rejected(relay: RelayServer) -> None:
    c = RelayClient(relay.address, settings=FAST)
    rkey, ids = await new_queue(c)
    raw = await RawConnection.open(relay.address)
    other_session = await RawConnection.open(relay.address)
    resp = await raw.request(
        p.SUB, ids.recipient_id, rkey, session_id=other_session.hello.session_id
    )
    assert resp == p.Err(p.ErrorCode.AUTH)
    assert await raw.request(p.SUB, ids.recipient_id, rkey) == p.OK  # the right session works
    raw.close()
    other_session.close()
    await c.close()


async def test_same_address_after_restart(tmp_path: Path) -> None:
    async with RelayServer(relay_config(tmp_path)) as first:
        address = first.address
    async with RelayServer(relay_config(tmp_path)) as second:
        assert second.address.fingerprint == address.fingerprint
    for name in ("relay.db", "ca.key", "server.key"):
        assert (tmp_path / name).stat().st_mode & 0o077 == 0, name


async def test_unanswered_commands_time_out_as_temporary_errors(relay: RelayServer) -> None:
    from parley.relay.client import ClientSettings
    from parley.relay.errors import TemporaryRelayError
    from parley.retry import Backoff
    from parley.testing.proxy import FaultProxy

    async with FaultProxy(relay.address.host, relay.address.port) as proxy:
        via = RelayAddress(relay.address.fingerprint, "127.0.0.1", proxy.port)
        c = RelayClient(via, settings=ClientSettings(5.0, 0.3, 30.0, Backoff(0.05, 1.5, 0.5)))
        await c.ping()
        proxy.blackhole()  # the relay never hears of the next command
        with pytest.raises(TemporaryRelayError, match="timeout"):
            await c.ping()
        proxy.heal()
        await c.close()
