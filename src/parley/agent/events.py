"""What the agent tells its client: `AgentEvent(corr_id, conn_id, event)`.

Completion events (INV, OK, ERR) carry the corr id of the command they complete and are
kept until `ack_command_event(corr_id)`; spontaneous events carry an empty corr id.
"""

from __future__ import annotations

from typing import dataclass_transform

import msgspec


# (for type checkers, as at run time, its subclasses are frozen without saying so)
@dataclass_transform(frozen_default=True, field_specifiers=(msgspec.field,))
class _Event(msgspec.Struct, frozen=True, tag=str.upper):
    """Base of every event: tagged with its class name in capitals (Inv: INV)."""


class _MessageEvent(_Event):
    msg_id: int


class _RelayEvent(_Event):
    relay: str
    conn_ids: list[str]


class Inv(_Event):
    """create_connection finished: the invitation link to give to the other side."""

    link: str


class Conf(_Event):
    """The joiner confirmed: decide, then call allow_connection with `conf_id`."""

    conf_id: str
    info: bytes


class Req(_Event):
    """Someone joined our contact address: `info` is theirs; answer with
    `accept_contact_async(corr_id, inv_id, info)` or `reject_contact(inv_id)`."""

    inv_id: str
    info: bytes


class Info(_Event):
    """The initiator allowed the connection; its connection info."""

    info: bytes


class Con(_Event):
    """Both queues of the connection are active: messages can flow both ways."""


class Msg(_MessageEvent):
    """A received message, shown until `ack_message(conn_id, msg_id)`.

    `integrity` is "ok", or says what is wrong: "skipped N" (N messages never arrived),
    "bad hash" (the chain of message hashes is broken).
    """

    sender_msg_id: int
    body: bytes
    integrity: str = "ok"


class Rcvd(_MessageEvent):
    """The peer's client stored our message `snd_msg_id` (a delivery receipt); `status`
    is "ok", or "badMsgHash" when the peer got it with another hash than we sent.
    Shown until `ack_message(conn_id, msg_id)`, like MSG."""

    snd_msg_id: int
    status: str = "ok"


class RSync(_Event):
    """Ratchet re-synchronisation of the connection: `state` is "required" (a message
    could not be decrypted: call `synchronize_ratchet`), "started" (our new keys are on
    their way), "agreed" (new keys agreed, waiting for the peer's first message) or "ok"
    (messages flow again). `reason` says what failed. `done`, on "ok" after a
    re-negotiation, counts the connection's completed re-negotiations (1, 2, ...; also in
    its `ConnectionStatus.rsync_done`): a client that lost this event learns it there, and
    one that sees both handles the re-negotiation once."""

    state: str
    reason: str = ""
    done: int = 0


class Sent(_MessageEvent): ...


class MErr(_MessageEvent):
    """A message could not be delivered (its time to live passed, or a permanent error)."""

    reason: str


class Ok(_Event): ...


class Err(_Event):
    """A command failed permanently."""

    reason: str
    code: str = ""


class End(_Event):
    """Another client subscribed to this connection's queue: this agent gets no more."""


class Down(_RelayEvent): ...


class Up(_RelayEvent): ...


Event = (
    Inv | Conf | Req | Info | Con | Msg | Rcvd | RSync | Sent | MErr | Ok | Err | End | Down | Up
)


class AgentEvent(msgspec.Struct, frozen=True):
    corr_id: str
    conn_id: str
    event: Event


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Event)


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> Event:
    event: Event = _decoder.decode(data)
    return event
