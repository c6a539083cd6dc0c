"""Contacts: invitations, joining one, the contact made on the handshake, direct messages.

Rules run on the database thread, in the transaction given as their first argument (see
`effects`).
"""

from __future__ import annotations

import logging
import sqlite3

from parley.agent import events as aev
from parley.chat import addresses, connections, store, views
from parley.chat import events as cev
from parley.chat.effects import Completion, Effects, create_call, join_call
from parley.chat.model import (
    C_FAILED,
    C_READY,
    CT_CONNECTING,
    CT_READY,
    D_RCV,
    D_SND,
    FN_ADDRESS_JOINED,
    FN_CONTACT_INVITATION_CREATED,
    FN_CONTACT_JOINED,
    K_CONTACT,
    ChatError,
)
from parley.protocol import agent as ap
from parley.protocol import chat as cp

log = logging.getLogger(__name__)


def named(c: sqlite3.Connection, user: store.UserRow, name: str) -> store.ContactRow:
    contact = store.contact_by_name(c, user.user_id, name.lstrip("@"))
    if contact is None:
        raise ChatError(f"no contact {name}")
    return contact


def listed(c: sqlite3.Connection, user: store.UserRow) -> list[cev.Contact]:
    return [views.contact(row) for row in store.live_contacts(c, user.user_id)]


def create_invitation(c: sqlite3.Connection, user: store.UserRow) -> tuple[int, Effects]:
    """`/c`: a connection whose link the agent makes (INV: `invitation_created`)."""
    conn = store.insert_connection(c, K_CONTACT)
    fx = Effects()
    fx.call(c, user.user_id, conn, FN_CONTACT_INVITATION_CREATED, {}, create_call())
    return conn, fx


def invitation_created(c: sqlite3.Connection, k: Completion) -> Effects:
    """Continuation of `create_invitation`: the link is ready (or it could not be made)."""
    assert k.connection_id is not None
    key = f"invitation:{k.connection_id}"
    if not isinstance(k.event, aev.Inv):
        fx = connections.fail(c, k.connection_id, k.reason)
        fx.waiters.append((key, None))
        return fx
    store.set_connection(c, k.connection_id, link=k.event.link)
    fx = Effects(events=[cev.InvitationReady(k.connection_id, k.event.link)])
    fx.waiters.append((key, k.event.link))
    return fx


def connect(c: sqlite3.Connection, user: store.UserRow, link: str) -> tuple[int, Effects]:
    """`/c LINK`: join the link with our profile (`x.info`); the contact comes on CON.
    Through a contact address (or a group link) the profile goes in a request
    (`x.contact`, with the id we keep for that address); the owner accepts it, or not."""
    conn = store.insert_connection(c, K_CONTACT)
    fx = Effects()
    profile = cp.Profile(user.display_name, user.full_name)
    if ap.is_contact_link(link):
        link = link.strip()
        x_id = store.connection_x_contact_id(c, link) or cp.new_member_id()
        store.set_connection(c, conn, link=link, x_contact_id=x_id)
        request = cp.make(cp.XContact(profile, x_id))
        fx.call(c, user.user_id, conn, FN_ADDRESS_JOINED, {}, join_call(link, request))
        return conn, fx
    info = cp.make(cp.XInfo(profile))
    fx.call(c, user.user_id, conn, FN_CONTACT_JOINED, {}, join_call(link, info))
    return conn, fx


def address_joined(c: sqlite3.Connection, k: Completion) -> Effects:
    """Continuation of a JOIN of someone's address: the request is sent (the contact comes
    with the owner's CONF, if it accepts), or it could not be (a deleted address, say)."""
    if not isinstance(k.event, aev.Ok):
        return connections.fail(c, k.connection_id, k.reason)
    return Effects()


def contact_for(
    c: sqlite3.Connection, user: store.UserRow, conn: store.ConnectionRow, profile: cp.Profile
) -> int:
    """The connection's contact; made from the peer's profile if it has none yet."""
    if conn.contact_id is not None:
        return conn.contact_id
    contact_id = store.insert_contact(
        c, user.user_id, profile.display_name, profile.full_name, CT_CONNECTING
    )
    store.set_connection(c, conn.connection_id, contact_id=contact_id)
    return contact_id


def connection_ready(
    c: sqlite3.Connection,
    user: store.UserRow,
    conn: store.ConnectionRow,
    peer_info: bytes | None,
) -> Effects:
    """CON of a contact connection. Ready only with its contact: one missing is made
    from the peer's connection info (`x.info` or `x.ok`) the agent kept; without a
    profile there, the connection is failed with the reason, never ready with no one."""
    contact_id = conn.contact_id
    if contact_id is None:
        if conn.status == C_FAILED:
            return Effects()  # failed already, with its reason (a bad info, say)
        profile: cp.Profile | None = None
        problem = "the contact's profile never arrived"
        if peer_info is not None:
            try:
                msg = cp.decode_chat_message(peer_info)
            except cp.ChatMessageError as e:
                problem = f"bad info: {e}"
            else:
                if isinstance(msg.params, cp.XInfo | cp.XOk):
                    profile = msg.params.profile
                else:
                    problem = f"unexpected {msg.event} instead of a profile"
        if profile is None:
            reason = f"connected, but {problem}"
            log.warning("contact connection %s: %s", conn.agent_conn_id, reason)
            return connections.fail(c, conn.connection_id, reason)
        contact_id = contact_for(c, user, conn, profile)
    store.set_connection(c, conn.connection_id, status=C_READY, last_error=None)
    store.set_contact_status(c, contact_id, CT_READY)
    contact = store.contact_by_id(c, contact_id)
    assert contact is not None
    fx = Effects(events=[cev.ContactConnected(views.contact(contact))], label="con:contact")
    if conn.agent_conn_id is not None:
        addresses.welcome_on_connect(c, user, contact_id, conn.agent_conn_id, fx)
    return fx


def send_message(
    c: sqlite3.Connection,
    user: store.UserRow,
    name: str,
    msg: cp.ChatMessage,
    text: str,
    quote: store.ItemQuote | None = None,
) -> tuple[cev.ChatItem, Effects]:
    contact = named(c, user, name)
    conn = store.contact_connection(c, contact.contact_id)
    if conn is None or conn.status != C_READY or conn.agent_conn_id is None:
        raise ChatError(f"{name} is not connected yet")
    item_id = store.insert_item(
        c, user.user_id, D_SND, text, msg.msg_id, contact_id=contact.contact_id, quote=quote
    )
    fx = Effects()
    fx.send(c, conn.agent_conn_id, msg, item_id)
    return views.item(c, item_id), fx


def delete(c: sqlite3.Connection, user: store.UserRow, name: str) -> tuple[list[str], cev.Contact]:
    """Delete a contact; returns its agent connections (to delete) and its view."""
    contact = named(c, user, name)
    conns = store.contact_agent_conns(c, contact.contact_id)
    store.delete_contact_connections(c, contact.contact_id)
    store.tombstone_contact(c, contact.contact_id)
    return conns, views.contact(contact)


def received_text(
    c: sqlite3.Connection, user: store.UserRow, contact: store.ContactRow, msg: cp.ChatMessage
) -> Effects:
    """`x.msg.new` from a contact."""
    assert isinstance(msg.params, cp.XMsgNew)
    quote = received_quote(c, msg.params.quote, contact_id=contact.contact_id)
    item_id = store.insert_item(
        c,
        user.user_id,
        D_RCV,
        msg.params.content.text,
        msg.msg_id,
        contact_id=contact.contact_id,
        quote=quote,
    )
    return Effects(events=[cev.NewChatItem(views.item(c, item_id))])


def received_quote(
    c: sqlite3.Connection,
    quote: cp.QuotedMsg | None,
    *,
    contact_id: int | None = None,
    group_id: int | None = None,
) -> store.ItemQuote | None:
    """How a received reply keeps its quote: linked to our item when we have it (`sent`
    is from the sender's side: a message it sent is one we received)."""
    if quote is None:
        return None
    ref = quote.msg_ref
    found = store.item_by_msg(c, ref.msg_id, contact_id=contact_id, group_id=group_id)
    linked = found.item_id if found is not None and not found.deleted else None
    # from our side: the sender's own message is one we received
    return (linked, ref.msg_id, quote.content.text, not ref.sent)
