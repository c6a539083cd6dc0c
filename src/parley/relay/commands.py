"""The relay's commands: what it does with each transmission a client sends.

State changes are written through the group committer; each is answered, and takes effect
in memory, only once committed (NEW, KEY, OFF, DEL, SEND). ACK alone is answered at once: an
ACK lost in a crash only means a message delivered again. docs/protocol.md is the reference.
"""

from __future__ import annotations

import hmac
import secrets

from parley.protocol import relay as p
from parley.relay.config import RelayConfig
from parley.relay.delivery import Delivery
from parley.relay.session import Session
from parley.relay.state import Queues, QueueState, RandomIds, RelayStats, Stored, now_ms
from parley.relay.store import (
    AddMessage,
    CreateQueue,
    DeleteMessage,
    DeleteQueue,
    Done,
    GroupCommitter,
    MessageRecord,
    QueueRecord,
    SecureQueue,
    StoreOp,
    SuspendQueue,
)


class Commands:
    """Handles transmissions. `committer` is set while the relay runs."""

    def __init__(
        self, config: RelayConfig, stats: RelayStats, queues: Queues, delivery: Delivery
    ) -> None:
        self.config = config
        self.stats = stats
        self.queues = queues
        self.delivery = delivery
        self.cache = queues.cache
        self.committer: GroupCommitter | None = None
        self._msg_ids = RandomIds()
        self._uncommitted_bytes = 0  # bodies of SENDs accepted, not yet committed
        self._password = config.create_password.encode() if config.create_password else None

    def commit(self, op: StoreOp, done: Done | None = None) -> None:
        assert self.committer is not None
        self.committer.submit(op, done)

    def end_session(self, s: Session) -> None:
        """A connection closed: its subscriptions end."""
        self.queues.unsubscribe(s)

    def handle(self, s: Session, raw: bytes) -> None:
        try:
            t = p.decode_transmission(raw)
        except p.ProtocolError as e:
            s.error("INVALID", b"", b"", e.code)
            return
        try:
            cmd = p.decode_command(t.command)
        except p.ProtocolError as e:
            s.error("INVALID", t.corr_id, t.entity_id, e.code)
            return
        match cmd:
            case p.Send():
                s.last_command = s.last_active
                self.send(s, t, cmd)
            case p.Ack():
                s.last_command = s.last_active
                self.ack(s, t, cmd)
            case p.Ping():
                if t.entity_id or t.auth:
                    s.error("PING", t.corr_id, t.entity_id, p.ErrorCode.CMD_PROHIBITED)
                else:
                    s.answer("PING:OK", t.corr_id, b"", p.PONG)
            case p.New():
                s.last_command = s.last_active
                self.new(s, t, cmd)
            case _:
                s.last_command = s.last_active
                kind = _KIND[type(cmd)]
                q = self.recipient_queue(s, t, kind)
                if q is None:
                    return
                match cmd:
                    case p.Sub():
                        self.sub(s, t, q)
                    case p.Key():
                        self.key(s, t, q, cmd)
                    case p.Get():
                        self.delivery.get(s, t, q)
                    case p.Off():
                        self.off(s, t, q)
                    case p.Del():
                        self.delete(s, t, q)

    def recipient_queue(self, s: Session, t: p.Transmission, kind: str) -> QueueState | None:
        """The queue a recipient command is for, if it exists and the command is authorized."""
        if not t.entity_id:
            s.error(kind, t.corr_id, t.entity_id, p.ErrorCode.CMD_NO_ENTITY)
            return None
        if not t.auth:
            s.error(kind, t.corr_id, t.entity_id, p.ErrorCode.CMD_NO_AUTH)
            return None
        q = self.queues.by_recipient.get(t.entity_id)
        if q is None or q.deleting:
            s.error(kind, t.corr_id, t.entity_id, p.ErrorCode.NO_QUEUE)
            return None
        if not s.authorized(q.recipient_key, t):
            s.error(kind, t.corr_id, t.entity_id, p.ErrorCode.AUTH)
            return None
        return q

    def new(self, s: Session, t: p.Transmission, cmd: p.New) -> None:
        if t.entity_id:
            s.error("NEW", t.corr_id, t.entity_id, p.ErrorCode.CMD_PROHIBITED)
            return
        if not t.auth:
            s.error("NEW", t.corr_id, b"", p.ErrorCode.CMD_NO_AUTH)
            return
        # the cheap checks first: the authenticator costs an X25519
        if self._password is not None and not hmac.compare_digest(cmd.password, self._password):
            s.auth_failed()
            s.error("NEW", t.corr_id, b"", p.ErrorCode.AUTH)
            return
        max_queues = self.config.max_queues
        if max_queues is not None and len(self.queues) >= max_queues:
            s.error("NEW", t.corr_id, b"", p.ErrorCode.QUOTA)
            return
        if len(cmd.recipient_key) != p.KEY_SIZE or not s.authorized(cmd.recipient_key, t):
            s.error("NEW", t.corr_id, b"", p.ErrorCode.AUTH)
            return
        rid, sid = secrets.token_bytes(p.QUEUE_ID_SIZE), secrets.token_bytes(p.QUEUE_ID_SIZE)
        while rid in self.queues.by_recipient or sid in self.queues.by_sender or rid == sid:
            rid, sid = secrets.token_bytes(p.QUEUE_ID_SIZE), secrets.token_bytes(p.QUEUE_ID_SIZE)
        record = QueueRecord(rid, sid, cmd.recipient_key, None, "active", now_ms())
        q = QueueState(rid, sid, cmd.recipient_key, None, "active")
        self.queues.add(q)  # ids are unknown to anyone until IDS is sent after the commit

        def done(error: BaseException | None) -> None:
            if error is None:
                s.answer("NEW:OK", t.corr_id, b"", p.Ids(rid, sid))
            else:
                self.queues.forget(q)
                s.error("NEW", t.corr_id, b"", p.ErrorCode.INTERNAL)

        self.commit(CreateQueue(record), done)

    def sub(self, s: Session, t: p.Transmission, q: QueueState) -> None:
        old = q.subscriber
        if old is not None and old is not s:
            old.subscriptions.discard(q.recipient_id)
            old.send(b"", q.recipient_id, p.END)
        q.subscriber = s
        s.subscriptions.add(q.recipient_id)
        q.delivered = False
        s.answer("SUB:OK", t.corr_id, t.entity_id, p.OK)
        self.delivery.deliver(q)

    def key(self, s: Session, t: p.Transmission, q: QueueState, cmd: p.Key) -> None:
        key = cmd.sender_key
        if len(key) != p.KEY_SIZE:
            s.error("KEY", t.corr_id, t.entity_id, p.ErrorCode.CMD_SYNTAX)
            return
        if q.sender_key not in (None, key) or q.securing not in (None, key):
            s.error("KEY", t.corr_id, t.entity_id, p.ErrorCode.AUTH)
            return
        if q.sender_key == key:
            s.answer("KEY:OK", t.corr_id, t.entity_id, p.OK)
            return
        # the key takes effect in memory only once it is committed; a repeat while the
        # first is in flight is answered after its own (later) commit
        q.securing = key

        def done(error: BaseException | None) -> None:
            if error is None:
                q.sender_key = key
                s.answer("KEY:OK", t.corr_id, t.entity_id, p.OK)
            else:
                s.error("KEY", t.corr_id, t.entity_id, p.ErrorCode.INTERNAL)
            if q.securing == key and (error is None or q.sender_key is None):
                q.securing = None

        self.commit(SecureQueue(q.recipient_id, key), done)

    def off(self, s: Session, t: p.Transmission, q: QueueState) -> None:
        def done(error: BaseException | None) -> None:
            if error is None:
                q.status = "off"
                s.answer("OFF:OK", t.corr_id, t.entity_id, p.OK)
            else:
                s.error("OFF", t.corr_id, t.entity_id, p.ErrorCode.INTERNAL)

        self.commit(SuspendQueue(q.recipient_id), done)

    def delete(self, s: Session, t: p.Transmission, q: QueueState) -> None:
        q.deleting = True  # SENDs from now on get NO_QUEUE; undone if the commit fails

        def done(error: BaseException | None) -> None:
            if error is None:
                self.queues.forget(q)
                s.answer("DEL:OK", t.corr_id, t.entity_id, p.OK)
            else:
                q.deleting = False
                s.error("DEL", t.corr_id, t.entity_id, p.ErrorCode.INTERNAL)

        self.commit(DeleteQueue(q.recipient_id), done)

    def send(self, s: Session, t: p.Transmission, cmd: p.Send) -> None:
        if not t.entity_id:
            s.error("SEND", t.corr_id, t.entity_id, p.ErrorCode.CMD_NO_ENTITY)
            return
        q = self.queues.by_sender.get(t.entity_id)
        if q is None or q.deleting:
            s.error("SEND", t.corr_id, t.entity_id, p.ErrorCode.NO_QUEUE)
            return
        if q.sender_key is None:
            if t.auth:  # an unsecured queue takes only unauthenticated confirmations
                s.error("SEND", t.corr_id, t.entity_id, p.ErrorCode.AUTH)
                return
        elif not t.auth:  # only confirmations are unsigned: this one came again
            s.repeated_confirmation(t.corr_id, t.entity_id)
            return
        elif not s.authorized(q.sender_key, t):
            s.error("SEND", t.corr_id, t.entity_id, p.ErrorCode.AUTH)
            return
        if q.status != "active":
            s.error("SEND", t.corr_id, t.entity_id, p.ErrorCode.AUTH)
            return
        body = cmd.body
        size = len(body)
        if size > self.config.max_message_body:
            s.error("SEND", t.corr_id, t.entity_id, p.ErrorCode.LARGE_MSG)
            return
        if len(q.messages) + q.uncommitted >= self.config.quota:
            s.error("SEND", t.corr_id, t.entity_id, p.ErrorCode.QUOTA)
            return
        cap = self.config.max_stored_bytes
        if cap is not None and self.stats.bytes_stored + self._uncommitted_bytes + size > cap:
            s.error("SEND", t.corr_id, t.entity_id, p.ErrorCode.QUOTA)
            return
        stored = Stored(self._msg_ids.next(), now_ms(), cmd.flags, size)
        q.uncommitted += 1
        self._uncommitted_bytes += size
        self.stats.messages_sent += 1

        def done(error: BaseException | None) -> None:
            q.uncommitted -= 1
            self._uncommitted_bytes -= size
            if error is not None:
                s.error("SEND", t.corr_id, t.entity_id, p.ErrorCode.INTERNAL)
                return
            if self.queues.is_current(q):
                q.messages.append(stored)
                self.stats.messages_stored += 1
                self.stats.bytes_stored += size
                self.cache.put(stored.msg_id, body)
                self.delivery.deliver(q)
            s.answer("SEND:OK", t.corr_id, t.entity_id, p.OK)

        record = MessageRecord(q.recipient_id, stored.msg_id, stored.ts, stored.flags, body)
        self.commit(AddMessage(record), done)

    def ack(self, s: Session, t: p.Transmission, cmd: p.Ack) -> None:
        q = self.recipient_queue(s, t, "ACK")
        if q is None:
            return
        if not q.messages or q.messages[0].msg_id != cmd.msg_id:
            s.error("ACK", t.corr_id, t.entity_id, p.ErrorCode.NO_MSG)
            return
        head = q.messages.popleft()
        self.cache.discard(head.msg_id)
        q.delivered = False
        self.stats.messages_stored -= 1
        self.stats.bytes_stored -= head.size
        # An ACK lost in a crash only means the message is delivered again, and receivers
        # dedupe by message id, so the ACK is answered without waiting for its commit.
        self.commit(DeleteMessage(q.recipient_id, cmd.msg_id))
        s.answer("ACK:OK", t.corr_id, t.entity_id, p.OK)
        self.delivery.deliver(q)


_KIND: dict[type, str] = {
    p.New: "NEW",
    p.Sub: "SUB",
    p.Key: "KEY",
    p.Send: "SEND",
    p.Ack: "ACK",
    p.Get: "GET",
    p.Off: "OFF",
    p.Del: "DEL",
    p.Ping: "PING",
}
