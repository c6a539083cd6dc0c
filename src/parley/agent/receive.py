"""Receive: one relay message processed in one transaction, ON THE DATABASE THREAD.

Every function here takes the open sqlite connection and runs inside one `Database.run`
call: decrypt, check order and integrity, store, and collect what the caller does once
the transaction has committed (`Received`: events, new commands, ACK, delivery to kick).
Nothing here awaits or touches the network.
"""

from __future__ import annotations

import logging
import sqlite3

import msgspec

from parley.agent import delivery, ratchet_sync, store
from parley.agent import events as ev
from parley.agent.model import (
    CONFIRMATION,
    DELETED,
    INVITED,
    READY,
    ROLE_CONTACT,
    AgentError,
    new_id,
)
from parley.agent.store import CommandArgs, CommandRow, ConnRow, RcvQueueRow
from parley.crypto import (
    CryptoError,
    DuplicateMessage,
    RatchetState,
    X3DHKeyPair,
    X3DHPublic,
    init_initiator,
    initiator_agree,
    queue_box,
    ratchet_decrypt,
)
from parley.protocol import agent as ap
from parley.protocol.relay import Msg as RelayMsg

log = logging.getLogger(__name__)


class Received(msgspec.Struct):
    """What to do after the transaction of one received message has committed."""

    events: list[ev.Event] = msgspec.field(default_factory=list)
    commands: list[CommandRow] = msgspec.field(default_factory=list)
    ack: bool = False
    kick_delivery: bool = False
    queue: RcvQueueRow | None = None
    new: bool = False  # the relay message had not been received before


class Arrival(msgspec.Struct, frozen=True):
    """The relay message being processed, with its connection and receive queue."""

    conn: ConnRow
    rq: RcvQueueRow
    qm: ap.QueueMessage
    relay_msg_id: bytes


def receive(c: sqlite3.Connection, conn_id: str, msg: RelayMsg, message_ttl: float) -> Received:
    """Process one relay message in one transaction (database thread)."""
    out = Received()
    conn = store.get_conn(c, conn_id)
    rq = store.get_rcv_queue(c, conn_id)
    if conn is None or rq is None or conn.status == DELETED:
        return out
    out.queue = rq
    if rq.last_relay_msg_id == msg.msg_id:  # delivered again (reconnect or relay restart)
        status = store.rcv_message_status(c, conn_id, msg.msg_id)
        out.ack = status is None or status == "acked"
        return out
    out.ack = True
    out.new = True
    store.set_last_relay_msg_id(c, conn_id, msg.msg_id)
    try:
        qm = ap.decode_queue_message(msg.body)
        arrival = Arrival(conn, rq, qm, msg.msg_id)
        if conn.role == ROLE_CONTACT or qm.kind == ap.KIND_REQUEST:
            _request(c, arrival, out)
        elif qm.kind == ap.KIND_CONFIRMATION:
            _confirmation(c, arrival, out)
        elif qm.kind == ap.KIND_RATCHET_KEY:
            if ratchet_sync.on_key(c, conn, rq, qm, message_ttl, out.events):
                out.kick_delivery = True
        else:
            _sequenced(c, arrival, out, message_ttl)
    except DuplicateMessage:
        log.info("duplicate message on %s dropped", conn_id)
    except (CryptoError, ap.EnvelopeError, AgentError) as e:
        log.warning("undecodable message on %s dropped: %s", conn_id, e)
    return out


def _unseal(a: Arrival) -> bytes:
    """The plaintext of a message boxed to the queue with the sender's key in the clear
    (confirmations, contact requests)."""
    assert a.qm.sender_box_public is not None
    return queue_box(a.rq.box_private, a.qm.sender_box_public).decrypt(a.qm.box_ciphertext)


def _request(c: sqlite3.Connection, a: Arrival, out: Received) -> None:
    """An invitation request on a contact address (REQ); a repeat of one is dropped."""
    conn, qm = a.conn, a.qm
    if conn.role != ROLE_CONTACT or qm.kind != ap.KIND_REQUEST:
        raise AgentError(f"unexpected message kind {qm.kind!r} on a {conn.role} connection")
    req = ap.decode_invitation_request(_unseal(a))
    inv_id = new_id()
    if store.insert_contact_request(c, inv_id, conn.conn_id, req.invitation.strip(), req.info):
        out.events.append(ev.Req(inv_id, req.info))
    else:
        log.info("repeated contact request on %s ignored", conn.conn_id)


def _confirmation(c: sqlite3.Connection, a: Arrival, out: Received) -> None:
    """The initiator gets the joiner's confirmation (CONF); the joiner gets the allow (INFO)."""
    conn, rq, qm = a.conn, a.rq, a.qm
    if rq.status != "new":
        log.info("repeated confirmation on %s ignored", conn.conn_id)
        return
    assert qm.sender_box_public is not None
    body = ap.decode_confirmation_body(_unseal(a))
    if conn.role == "initiator":
        if body.x3dh is None or conn.x3dh_private is None or conn.status != INVITED:
            raise AgentError("confirmation without the joiner's keys")
        own = X3DHKeyPair.from_bytes(conn.x3dh_private)
        state = init_initiator(initiator_agree(own, X3DHPublic.from_bytes(body.x3dh)), own)
    else:
        if conn.ratchet is None:
            raise AgentError("confirmation before our own was made")
        state = RatchetState.from_bytes(conn.ratchet)
    state, decrypted = ratchet_decrypt(state, body.ratchet_message)
    message = ap.decode_agent_message(decrypted)
    store.confirm_rcv_queue(c, conn.conn_id, qm.sender_box_public, body.sender_key)
    store.start_ratchet(c, conn.conn_id, state.to_bytes())
    if isinstance(message, ap.JoinConfirmation | ap.AllowConfirmation):
        store.set_peer_info(c, conn.conn_id, message.info)
    if conn.role == "initiator" and isinstance(message, ap.JoinConfirmation):
        conf_id = new_id()
        store.insert_confirmation(
            c, conf_id, conn.conn_id, ap.encode_queue_address(message.reply_queue), message.info
        )
        store.set_conn_status(c, conn.conn_id, CONFIRMATION)
        out.events.append(ev.Conf(conf_id, message.info))
    elif conn.role == "joiner" and isinstance(message, ap.AllowConfirmation):
        out.commands.append(
            store.insert_command(
                c,
                "int:" + new_id(),
                conn.conn_id,
                "SECURE",
                rq.relay,
                CommandArgs(),
                internal=True,
            )
        )
        out.events.append(ev.Info(message.info))
    else:
        raise AgentError(f"unexpected {type(message).__name__} as confirmation")


def _sequenced(c: sqlite3.Connection, a: Arrival, out: Received, message_ttl: float) -> None:
    """A message after the handshake: HELLO, or a client's message (MSG)."""
    conn, rq, qm, relay_msg_id = a.conn, a.rq, a.qm, a.relay_msg_id
    if rq.peer_box_public is None or conn.ratchet is None:
        raise AgentError("message before the confirmation")
    rmsg = queue_box(rq.box_private, rq.peer_box_public).decrypt(qm.box_ciphertext)
    try:
        state, decrypted = ratchet_decrypt(RatchetState.from_bytes(conn.ratchet), rmsg)
    except DuplicateMessage:
        raise
    except CryptoError as e:
        ratchet_sync.decrypt_failed(c, conn, str(e), out.events)
        raise
    message = ap.decode_agent_message(decrypted)
    if not isinstance(message, ap.Sequenced):
        raise AgentError(f"unexpected {type(message).__name__} after the handshake")
    store.set_ratchet(c, conn.conn_id, state.to_bytes())
    if ratchet_sync.decrypted(c, conn, message_ttl, out.events):
        out.kick_delivery = True
        fresh = store.get_conn(c, conn.conn_id)
        assert fresh is not None
        conn = fresh
    # an id below the last one that still decrypts: not a repeat (the ratchet would have
    # refused it), so the sender's ids went back (e.g. its database was restored)
    bad_id = message.msg_id < conn.rcv_msg_id and isinstance(message.content, ap.UserMessage)
    if message.msg_id <= conn.rcv_msg_id and not bad_id:
        log.info("message %d on %s seen before", message.msg_id, conn.conn_id)
        return
    integrity = "ok"
    if bad_id:
        integrity = f"bad id {message.msg_id}"
    elif message.msg_id > conn.rcv_msg_id + 1:
        integrity = f"skipped {message.msg_id - conn.rcv_msg_id - 1}"
    elif message.prev_hash != conn.rcv_prev_hash:
        integrity = "bad hash"
    if not bad_id:
        store.advance_receive_chain(c, conn.conn_id, message.msg_id, ap.message_hash(decrypted))
    match message.content:
        case ap.Hello():
            store.set_rcv_queue_status(c, conn.conn_id, "active")
            if conn.role == "initiator" and conn.snd_msg_id == 0:
                fresh = store.get_conn(c, conn.conn_id)
                assert fresh is not None
                delivery.enqueue(c, fresh, ap.Hello(), internal=True, ttl=message_ttl)
                out.kick_delivery = True
            snd = store.get_snd_queue(c, conn.conn_id)
            if snd is not None and snd.status == "active" and conn.status != READY:
                store.set_conn_status(c, conn.conn_id, READY)
                out.events.append(ev.Con())
        case ap.UserMessage(body):
            msg_hash = ap.message_hash(decrypted)
            kept = _keep(c, conn, relay_msg_id, message.msg_id, body, integrity, "msg", msg_hash)
            out.events.append(ev.Msg(kept, message.msg_id, body, integrity))
            out.ack = False  # the client acknowledges with ack_message
        case ap.Receipt(snd_msg_id, msg_hash):
            sent_hash = store.snd_message_hash(c, conn.conn_id, snd_msg_id)
            if sent_hash is None:
                log.info("receipt for unknown message %d on %s", snd_msg_id, conn.conn_id)
                return
            status = "ok" if sent_hash == msg_hash else "badMsgHash"
            store.set_snd_receipt(c, conn.conn_id, snd_msg_id, status)
            body = rcvd_body(snd_msg_id, status)
            kept = _keep(c, conn, relay_msg_id, message.msg_id, body, integrity, "rcvd")
            out.events.append(ev.Rcvd(kept, snd_msg_id, status))
            out.ack = False  # acknowledged by the client, as a message


def _keep(
    c: sqlite3.Connection,
    conn: ConnRow,
    relay_msg_id: bytes,
    sender_msg_id: int,
    body: bytes,
    integrity: str,
    kind: str,
    msg_hash: bytes | None = None,
) -> int:
    """Store what the client is shown and acknowledges; its agent msg id."""
    msg_id = conn.last_rcv_internal_id + 1
    store.insert_rcv_message(
        c,
        conn.conn_id,
        msg_id,
        sender_msg_id,
        relay_msg_id,
        body,
        integrity,
        kind=kind,
        msg_hash=msg_hash,
    )
    return msg_id


def rcvd_body(snd_msg_id: int, status: str) -> bytes:
    """How a received receipt is kept until the client acks it (an rcv_messages body)."""
    return msgspec.msgpack.encode((snd_msg_id, status))


def rcvd_event(msg_id: int, body: bytes) -> ev.Rcvd:
    snd_msg_id, status = msgspec.msgpack.decode(body, type=tuple[int, str])
    return ev.Rcvd(msg_id, snd_msg_id, status)
