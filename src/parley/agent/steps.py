"""The command steps: what each kind of command does when the scheduler runs it.

One function per command kind (NEW, JOIN, ALLOW, SECURE, ACK, DEL), each an attempt that
may be repeated: a step that has several network calls commits its progress in the
command's arguments (`CommandArgs.stage`, `.envelope`, `.uncertain`) so that a retry
continues where the last attempt stopped, with the same keys and the same ciphertext. The
last transaction of a step commits its effects with the end of the command and its event
(`CommandBook.complete`). Errors propagate to the scheduler, which retries or fails.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from parley.agent import delivery, store
from parley.agent import events as ev
from parley.agent.book import CommandBook
from parley.agent.delivery import Delivery
from parley.agent.inbound import Inbound
from parley.agent.model import (
    ACCEPTED,
    CONFIRMATION,
    INVITED,
    JOINED,
    NEW,
    ROLE_CONTACT,
    AgentConfig,
    AgentError,
)
from parley.agent.relays import RelayPool
from parley.agent.store import CommandRow, RcvQueueRow, SndQueueRow
from parley.crypto import (
    RatchetState,
    X3DHKeyPair,
    X3DHPublic,
    init_joiner,
    joiner_agree,
    queue_box,
    ratchet_encrypt,
)
from parley.crypto.x25519 import public_key as public_from_private
from parley.protocol import agent as ap
from parley.protocol.relay import ErrorCode
from parley.protocol.relay_auth import AuthKey
from parley.relay.errors import PermanentRelayError


@dataclass(frozen=True)
class StepEnv:
    """What the steps work with."""

    book: CommandBook
    relays: RelayPool
    config: AgentConfig
    inbound: Inbound  # receive queues to watch or forget
    delivery: Delivery  # workers to kick


async def run_step(env: StepEnv, cmd: CommandRow) -> None:
    step = STEPS.get(cmd.kind)
    if step is None:
        raise AgentError(f"unknown command kind {cmd.kind}")
    await step(env, cmd)


async def new(env: StepEnv, cmd: CommandRow) -> None:
    """The initiator: make the receive queue and the invitation link (INV)."""
    conn = await env.book.db.run(lambda c: store.live_conn(c, cmd.conn_id))
    assert conn.x3dh_private is not None
    rq = await _create_rcv_queue(env, cmd)
    if conn.role == ROLE_CONTACT:  # a contact address: the queue alone
        queue = ap.QueueAddress(rq.relay, rq.sender_id, public_from_private(rq.box_private))
        link = ap.encode_contact_link(
            ap.ContactAddress(ap.MIN_AGENT_VERSION, ap.AGENT_VERSION, queue)
        )
    else:
        link = _invitation_link(rq, conn.x3dh_private)

    def effects(c: sqlite3.Connection) -> None:
        store.insert_rcv_queue(c, rq)
        store.set_invited(c, cmd.conn_id, INVITED, link)

    await env.book.complete(cmd, ev.Inv(link), effects)
    env.inbound.watch(rq)


def _invitation_link(rq: RcvQueueRow, x3dh_private: bytes) -> str:
    x3dh = X3DHKeyPair.from_bytes(x3dh_private)
    queue = ap.QueueAddress(rq.relay, rq.sender_id, public_from_private(rq.box_private))
    return ap.encode_invitation_link(
        ap.Invitation(ap.MIN_AGENT_VERSION, ap.AGENT_VERSION, queue, x3dh.public().to_bytes())
    )


async def join(env: StepEnv, cmd: CommandRow) -> None:
    """The joiner: make the reply queue, then send the confirmation to the link's queue (OK)."""
    if cmd.args.contact_link:
        await _request(env, cmd)
        return
    a = cmd.args
    assert a.recipient_key and a.box_private and a.sender_key and a.snd_box_private
    conn, rq = await env.book.db.run(
        lambda c: (store.live_conn(c, cmd.conn_id), store.get_rcv_queue(c, cmd.conn_id))
    )
    assert conn.invitation is not None
    inv = ap.decode_invitation_link(conn.invitation)
    if rq is None:  # step 1: the reply queue, made once and reused by every retry
        new_rq = rq = await _create_rcv_queue(env, cmd)
        await env.book.save_progress(cmd, lambda c: store.insert_rcv_queue(c, new_rq))
        env.inbound.watch(rq)
    if a.envelope is None:  # step 2: the confirmation, encrypted once
        assert conn.x3dh_private is not None
        own = X3DHKeyPair.from_bytes(conn.x3dh_private)
        peer = X3DHPublic.from_bytes(inv.x3dh)
        state = init_joiner(joiner_agree(own, peer), peer)
        reply = ap.QueueAddress(rq.relay, rq.sender_id, public_from_private(rq.box_private))
        message = ap.JoinConfirmation(reply, a.info)
        await _seal_confirmation(env, cmd, state, message, own.public().to_bytes(), inv.queue)
    await _send_confirmation(env, cmd, inv.queue)

    def effects(c: sqlite3.Connection) -> None:
        # a retried JOIN can end after the connection went further (even to CON):
        # statuses only ever move forward
        store.advance_handshake(
            c, cmd.conn_id, snd_queue="confirmed", conn_from=NEW, conn_to=JOINED
        )

    await env.book.complete(cmd, ev.Ok(), effects)


async def _request(env: StepEnv, cmd: CommandRow) -> None:
    """JOIN through a contact address: make our own receive queue and invitation (the
    connection becomes an initiator's, INVITED), then send the invitation with our info
    to the address's queue (OK). A repeat reaches the owner as the same request (its
    agent drops it); the owner accepts by joining our invitation (CONF follows here)."""
    a = cmd.args
    assert a.snd_box_private is not None
    address = ap.decode_contact_link(a.contact_link)
    conn, rq = await env.book.db.run(
        lambda c: (store.live_conn(c, cmd.conn_id), store.get_rcv_queue(c, cmd.conn_id))
    )
    if rq is None:  # step 1: our queue, made once and reused by every retry
        new_rq = rq = await _create_rcv_queue(env, cmd)
        await env.book.save_progress(cmd, lambda c: store.insert_rcv_queue(c, new_rq))
        env.inbound.watch(rq)
    if a.envelope is None:  # step 2: the request, encrypted once, with our invitation
        assert conn.x3dh_private is not None
        link = _invitation_link(rq, conn.x3dh_private)
        body = ap.encode_invitation_request(ap.InvitationRequest(link, a.info))
        box = queue_box(a.snd_box_private, address.queue.box_public)
        ct = box.encrypt(body, ap.BOX_PAD)
        a.envelope = ap.encode_request(public_from_private(a.snd_box_private), ct)
        await env.book.save_progress(
            cmd, lambda c: store.set_invited(c, cmd.conn_id, INVITED, link)
        )
    try:
        await env.relays.client(address.queue.relay).send(address.queue.sender_id, None, a.envelope)
    except PermanentRelayError as e:
        if e.code in (ErrorCode.NO_QUEUE, ErrorCode.AUTH):
            raise PermanentRelayError(
                e.code, "this contact address does not exist (deleted by its owner?)"
            ) from e
        raise
    await env.book.complete(cmd, ev.Ok())


async def allow(env: StepEnv, cmd: CommandRow) -> None:
    """The initiator, once the client allowed: secure our queue, send our confirmation (OK)."""
    a = cmd.args
    assert a.sender_key and a.snd_box_private
    conn, rq, conf = await env.book.db.run(
        lambda c: (
            store.live_conn(c, cmd.conn_id),
            store.get_rcv_queue(c, cmd.conn_id),
            store.confirmation_reply_queue(c, a.conf_id),
        )
    )
    assert rq is not None and rq.peer_sender_key is not None
    reply = ap.decode_queue_address(conf)
    if a.stage == 0:  # step 1: secure our queue with the joiner's key
        await env.relays.client(rq.relay).secure(
            rq.recipient_id, AuthKey.from_bytes(rq.recipient_key), rq.peer_sender_key
        )
        a.stage, cmd.relay = 1, reply.relay
        await env.book.save_progress(
            cmd, lambda c: store.set_rcv_queue_status(c, cmd.conn_id, "secured")
        )
    if a.envelope is None:  # step 2: our confirmation, encrypted once
        assert conn.ratchet is not None
        state = RatchetState.from_bytes(conn.ratchet)
        await _seal_confirmation(env, cmd, state, ap.AllowConfirmation(a.info), None, reply)
    await _send_confirmation(env, cmd, reply)

    def effects(c: sqlite3.Connection) -> None:
        store.accept_confirmation(c, a.conf_id)
        # a retried ALLOW can end after the HELLOs made the connection ready
        store.advance_handshake(
            c, cmd.conn_id, snd_queue="confirmed", conn_from=CONFIRMATION, conn_to=ACCEPTED
        )

    await env.book.complete(cmd, ev.Ok(), effects)


async def secure(env: StepEnv, cmd: CommandRow) -> None:
    """The joiner, after INFO: secure the reply queue, then say HELLO."""
    rq = await env.book.db.run(lambda c: store.get_rcv_queue(c, cmd.conn_id))
    assert rq is not None and rq.peer_sender_key is not None
    await env.relays.client(rq.relay).secure(
        rq.recipient_id, AuthKey.from_bytes(rq.recipient_key), rq.peer_sender_key
    )
    ttl = env.config.message_ttl

    def effects(c: sqlite3.Connection) -> None:
        store.set_rcv_queue_status(c, cmd.conn_id, "secured", only_from="confirmed")
        conn = store.live_conn(c, cmd.conn_id)
        if conn.snd_msg_id == 0:
            delivery.enqueue(c, conn, ap.Hello(), internal=True, ttl=ttl)

    await env.book.complete(cmd, ev.Ok(), effects)
    env.delivery.kick(cmd.conn_id)


async def ack(env: StepEnv, cmd: CommandRow) -> None:
    """Acknowledge a received message to its relay (which then delivers the next one),
    unless the ACK sent when the client called (`Inbound.send_ack_early`) went through."""

    def read(c: sqlite3.Connection) -> tuple[RcvQueueRow | None, bytes | None]:
        relay_msg_id = store.rcv_message_relay_id(c, cmd.conn_id, cmd.args.msg_id)
        return store.get_rcv_queue(c, cmd.conn_id), relay_msg_id

    sent = env.inbound.ack_sent(cmd.conn_id, cmd.args.msg_id)
    if sent is not None:
        await asyncio.wait([sent])
    if sent is None or not acknowledged(sent):
        await _ack_at_relay(env, *await env.book.db.run(read))
    await env.book.complete(
        cmd, ev.Ok(), lambda c: store.mark_acked(c, cmd.conn_id, cmd.args.msg_id)
    )


def acknowledged(sent: asyncio.Task[None]) -> bool:
    """Did this ACK reach its relay (NO_MSG: an earlier one did)?"""
    if sent.cancelled():
        return False
    error = sent.exception()
    return error is None or (
        isinstance(error, PermanentRelayError) and error.code == ErrorCode.NO_MSG
    )


async def _ack_at_relay(env: StepEnv, rq: RcvQueueRow | None, relay_msg_id: bytes | None) -> None:
    if rq is not None and relay_msg_id is not None:
        try:
            await env.relays.client(rq.relay).ack(
                rq.recipient_id, AuthKey.from_bytes(rq.recipient_key), relay_msg_id
            )
        except PermanentRelayError as e:
            if e.code != ErrorCode.NO_MSG:  # NO_MSG: acknowledged before
                raise


async def delete(env: StepEnv, cmd: CommandRow) -> None:
    """Delete the receive queue at its relay, then the connection."""
    rq = await env.book.db.run(lambda c: store.get_rcv_queue(c, cmd.conn_id))
    if rq is not None:
        try:
            await env.relays.client(rq.relay).delete(
                rq.recipient_id, AuthKey.from_bytes(rq.recipient_key)
            )
        except PermanentRelayError as e:
            if e.code not in (ErrorCode.NO_QUEUE, ErrorCode.AUTH):
                raise
        env.inbound.unwatch(rq.relay, rq.recipient_id)

    await env.book.complete(cmd, ev.Ok(), lambda c: store.delete_conn(c, cmd.conn_id))


STEPS: dict[str, Callable[[StepEnv, CommandRow], Awaitable[None]]] = {
    "NEW": new,
    "JOIN": join,
    "ALLOW": allow,
    "SECURE": secure,
    "ACK": ack,
    "DEL": delete,
}


# ---------------------------------------------------------------- shared by the steps


def _pick_relay(env: StepEnv, cmd: CommandRow) -> str:
    """NEW and JOIN move to the next configured relay on each retry."""
    relays = env.config.relays
    return relays[cmd.attempts % len(relays)]


async def _create_rcv_queue(env: StepEnv, cmd: CommandRow) -> RcvQueueRow:
    """Create a queue at a relay with the command's keys; the row is not stored yet."""
    a = cmd.args
    assert a.recipient_key is not None and a.box_private is not None
    relay = _pick_relay(env, cmd)
    ids = await env.relays.client(relay).create_queue(AuthKey.from_bytes(a.recipient_key))
    return RcvQueueRow(
        cmd.conn_id,
        relay,
        ids.recipient_id,
        ids.sender_id,
        a.recipient_key,
        a.box_private,
        None,
        None,
        "new",
        None,
    )


async def _seal_confirmation(
    env: StepEnv,
    cmd: CommandRow,
    state: RatchetState,
    message: ap.JoinConfirmation | ap.AllowConfirmation,
    x3dh_public: bytes | None,
    peer: ap.QueueAddress,
) -> None:
    """Encrypt our confirmation for the peer's queue once: commit it (in the command's
    arguments) with the advanced ratchet and our new send queue to `peer`."""
    a = cmd.args
    assert a.sender_key and a.snd_box_private
    plain = ap.encode_agent_message(message)
    state, rmsg = ratchet_encrypt(state, plain, ap.RATCHET_PAD)
    body = ap.ConfirmationBody(AuthKey.from_bytes(a.sender_key).public, x3dh_public, rmsg)
    box = queue_box(a.snd_box_private, peer.box_public)
    ct = box.encrypt(ap.encode_confirmation_body(body), ap.BOX_PAD)
    a.envelope = ap.encode_confirmation(public_from_private(a.snd_box_private), ct)
    sq = SndQueueRow(
        cmd.conn_id,
        peer.relay,
        peer.sender_id,
        a.sender_key,
        a.snd_box_private,
        peer.box_public,
        "new",
    )

    def tx(c: sqlite3.Connection) -> None:
        store.set_ratchet(c, cmd.conn_id, state.to_bytes())
        store.insert_snd_queue(c, sq)

    await env.book.save_progress(cmd, tx)


async def _send_confirmation(env: StepEnv, cmd: CommandRow, peer: ap.QueueAddress) -> None:
    """SEND an unauthenticated confirmation; an AUTH after an uncertain try means it got there.

    A confirmation whose OK was lost (a timeout, or the process killed while waiting)
    may already have been accepted, and the queue secured with our key, so a repeat
    gets AUTH: the earlier one arrived. The attempt is noted before it is made.
    """
    assert cmd.args.envelope is not None
    tried_before = cmd.args.uncertain
    if not cmd.args.uncertain:
        cmd.args.uncertain = True
        await env.book.save_progress(cmd, lambda c: None)
    try:
        await env.relays.client(peer.relay).send(peer.sender_id, None, cmd.args.envelope)
    except PermanentRelayError as e:
        # the queue is secured now: an unsigned SEND gets CMD NO_AUTH (or AUTH)
        secured = e.code in (ErrorCode.AUTH, ErrorCode.CMD_NO_AUTH)
        if secured and not tried_before:
            # nothing of ours can have reached it: someone else used the link
            raise PermanentRelayError(
                e.code, "this invitation link was used already (one-time links serve once)"
            ) from e
        if not secured:
            raise
