"""The relay client's subscriptions across lost links, refused reconnects and END.

Each test scripts one way the subscription between a client and a relay can get lost and
checks that a message sent afterwards still arrives, without any call from the test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from parley.protocol import relay as p
from parley.protocol.address import RelayAddress
from parley.protocol.relay_auth import AuthKey
from parley.relay.client import (
    MessageReceived,
    RelayClient,
    RelayEvent,
    RelayUp,
    SubscriptionEnded,
)
from parley.relay.errors import PermanentRelayError
from parley.relay.server import RelayServer
from parley.testing.proxy import FaultProxy
from parley.testing.waiting import wait_for_condition
from tests.relay.conftest import FAST, next_event, relay_config


async def new_queue(c: RelayClient) -> tuple[AuthKey, p.Ids]:
    key = AuthKey.generate()
    return key, await c.create_queue(key)


class _DropOnUp(asyncio.Queue[RelayEvent]):
    """Calls `hook` when the client reports RelayUp: what a link cut right after the
    handshake looks like from inside the client, at the most awkward instant."""

    hook: Callable[[], None] | None = None

    def put_nowait(self, item: RelayEvent) -> None:
        super().put_nowait(item)
        if isinstance(item, RelayUp) and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()


async def test_link_lost_between_handshake_and_subs(
    relay: RelayServer, make_client: Callable[[], RelayClient]
) -> None:
    """Before the fix the renewing SUBs were queued on the connection that had just been
    lost; nothing answered or timed them out, so the reconnect never finished and the
    client stayed unsubscribed for good."""
    events = _DropOnUp()
    c = RelayClient(relay.address, events=events, settings=FAST)
    sender = make_client()
    try:
        key, ids = await new_queue(c)
        await c.subscribe(ids.recipient_id, key)
        events.hook = c.drop_connection  # the next reconnect loses its link at once
        c.drop_connection()
        await wait_for_condition(lambda: events.hook is None, 5, message="no reconnect")
        await wait_for_condition(
            lambda: c.is_subscribed(ids.recipient_id), 10, message="never subscribed again"
        )
        await sender.send(ids.sender_id, None, b"after the lost renewal")
        got = await next_event(c, MessageReceived, 10)
        assert got.message.body == b"after the lost renewal"
    finally:
        await c.close()


async def test_subscription_returns_after_refused_reconnects(relay: RelayServer) -> None:
    """The relay cannot be reached for a while (every new connection reset); once it can,
    the client is subscribed again by itself and a message sent meanwhile arrives."""
    async with FaultProxy("127.0.0.1", relay.port, seed=1) as proxy:
        c = RelayClient(relay.address, settings=FAST, connect_to=proxy.address)
        direct = RelayClient(relay.address, settings=FAST)
        try:
            key, ids = await new_queue(c)
            await c.subscribe(ids.recipient_id, key)
            proxy.refuse()
            proxy.cut()
            await wait_for_condition(
                lambda: proxy.stats.links_refused >= 3, 10, message="no reconnect attempts"
            )
            await direct.send(ids.sender_id, None, b"sent while unreachable")
            assert not c.is_subscribed(ids.recipient_id)
            proxy.refuse(False)
            got = await next_event(c, MessageReceived, 10)
            assert got.message.body == b"sent while unreachable"
            assert c.is_subscribed(ids.recipient_id)
        finally:
            await c.close()
            await direct.close()


async def test_queue_stays_wanted_after_end(make_client: Callable[[], RelayClient]) -> None:
    first, second, sender = make_client(), make_client(), make_client()
    key, ids = await new_queue(first)
    await first.subscribe(ids.recipient_id, key)
    await second.subscribe(ids.recipient_id, key)
    await next_event(first, SubscriptionEnded)
    assert not first.is_subscribed(ids.recipient_id)
    assert ids.recipient_id in first.wanted  # renewed on the next connection
    first.keep_subscribed(ids.recipient_id, key)  # ... or now
    await next_event(second, SubscriptionEnded)
    await wait_for_condition(lambda: first.is_subscribed(ids.recipient_id), 5)
    await sender.send(ids.sender_id, None, b"back to the first")
    assert (await next_event(first, MessageReceived)).message.body == b"back to the first"


async def test_refused_subscription_is_reported(make_client: Callable[[], RelayClient]) -> None:
    c = make_client()
    _, ids = await new_queue(c)
    wrong = AuthKey.generate()
    c.keep_subscribed(ids.recipient_id, wrong)
    ended = await next_event(c, SubscriptionEnded)
    assert isinstance(ended.error, PermanentRelayError)
    assert ended.error.code == p.ErrorCode.AUTH
    assert ids.recipient_id not in c.wanted
    assert c.subscription_error(ids.recipient_id) is ended.error


async def test_a_client_with_nothing_to_do_stays_disconnected(
    relay: RelayServer, make_client: Callable[[], RelayClient]
) -> None:
    """A lost connection is not re-made for a client that wants nothing from the relay (no
    queue to keep subscribed, no recent command): the next command connects."""
    c = make_client()
    c._last_demand = -float("inf")
    await c.ping()
    c._last_demand = -float("inf")  # as if the command was long ago
    c.drop_connection()
    assert not c.connected and c._reconnect_task is None
    await c.ping()  # connects on demand
    assert c.connected


async def test_a_relay_with_a_password_lets_only_its_users_make_queues(tmp_path: Path) -> None:
    server = RelayServer(relay_config(tmp_path / "relay", create_password="open sesame"))
    await server.start()
    try:
        given = server.address.with_password()
        assert given.startswith("parley://") and ":open%20sesame@" in given
        assert str(RelayAddress.parse(given)) == str(server.address)  # canonical: no password
        with_pw = RelayClient(given, settings=FAST)
        without = RelayClient(str(server.address), settings=FAST)
        try:
            await new_queue(with_pw)
            with pytest.raises(PermanentRelayError) as e:
                await new_queue(without)
            assert e.value.code == p.ErrorCode.AUTH
        finally:
            await with_pw.close()
            await without.close()
    finally:
        await server.stop()
