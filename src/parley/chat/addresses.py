"""Long-term links: the user's contact address and the contact requests it brings
(auto-accept, a welcome message); group links are in `group_links`.

A contact address is an agent connection in contact mode (`K_ADDRESS`): its link stays the
same until it is deleted. Each join is a request (the agent's REQ with the requester's
`x.contact`); accepting it joins the requester's own invitation, after which the contact
connects as any other. Rules run in the transaction given as their first argument.
"""

from __future__ import annotations

import logging
import sqlite3

from parley.agent import events as aev
from parley.chat import connections, store, views
from parley.chat import events as cev
from parley.chat.effects import Completion, Effects, accept_call, create_call
from parley.chat.model import (
    C_DELETED,
    CT_CONNECTING,
    FN_ADDRESS_CREATED,
    FN_REQUEST_ACCEPTED,
    K_ADDRESS,
    K_CONTACT,
    L_ACTIVE,
    L_CREATING,
    L_DELETED,
    R_ACCEPTED,
    R_KNOWN,
    R_PENDING,
    R_REJECTED,
    ChatError,
)
from parley.protocol import chat as cp

log = logging.getLogger(__name__)


def address_key(link_id: int) -> str:
    """What the caller of `create` waits for (the link, or None if it failed)."""
    return f"address:{link_id}"


def _view(row: store.LinkRow) -> cev.AddressView:
    assert row.link is not None
    return cev.AddressView(row.link, row.auto_accept, row.welcome)


def request_view(r: store.RequestRow) -> cev.ContactRequestView:
    return cev.ContactRequestView(
        r.request_id, r.local_name, r.display_name, r.full_name, r.created_at, r.contact_id
    )


def create(c: sqlite3.Connection, user: store.UserRow) -> tuple[int, Effects]:
    """`/ad`: the agent makes the address (INV: `address_created`). Returns the link's id
    (the one being made, if a call before was interrupted)."""
    row = store.user_address(c, user.user_id, L_DELETED)
    if row is not None and row.status == L_ACTIVE:
        raise ChatError("you have a contact address already (/sa shows it, /da deletes it)")
    if row is not None:
        return row.link_id, Effects()
    conn = store.insert_connection(c, K_ADDRESS)
    link_id = store.insert_contact_link(c, user.user_id, conn, L_CREATING)
    fx = Effects()
    data = {"link_id": link_id}
    fx.call(c, user.user_id, conn, FN_ADDRESS_CREATED, data, create_call(contact=True))
    return link_id, fx


def created(c: sqlite3.Connection, k: Completion) -> Effects:
    """Continuation of CREATE for an address or a group link: the link exists."""
    row = store.contact_link(c, k.data["link_id"])
    assert row is not None
    key = address_key(row.link_id)
    fx = Effects()
    if not isinstance(k.event, aev.Inv):
        store.set_contact_link(c, row.link_id, status=L_DELETED)
        fx.merge(connections.fail(c, k.connection_id, k.reason))
        fx.waiters.append((key, None))
        return fx
    if row.status == L_DELETED:  # deleted while being made
        conn = store.connection(c, row.connection_id)
        if conn is not None and conn.agent_conn_id:
            fx.deletes.append(conn.agent_conn_id)
        fx.waiters.append((key, None))
        return fx
    store.set_contact_link(c, row.link_id, link=k.event.link, status=L_ACTIVE)
    store.set_connection(c, row.connection_id, link=k.event.link)
    if row.group_id is None:
        fx.events.append(cev.UserContactLinkCreated(k.event.link))
    else:
        role = row.role or "member"
        view = cev.GroupLinkView(views.group(c, row.group_id), k.event.link, role)
        fx.events.append(cev.GroupLinkCreated(view))
    fx.waiters.append((key, k.event.link))
    return fx


def _active(c: sqlite3.Connection, user: store.UserRow) -> store.LinkRow:
    row = store.user_address(c, user.user_id, L_DELETED)
    if row is None or row.status != L_ACTIVE:
        raise ChatError("you have no contact address (/ad creates one)")
    return row


def show(c: sqlite3.Connection, user: store.UserRow) -> cev.AddressView | None:
    row = store.user_address(c, user.user_id, L_DELETED)
    return _view(row) if row is not None and row.status == L_ACTIVE else None


def delete(c: sqlite3.Connection, user: store.UserRow) -> Effects:
    """`/da`: the link stops working (its queue is deleted); the contacts made stay."""
    row = store.user_address(c, user.user_id, L_DELETED)
    if row is None:
        raise ChatError("you have no contact address")
    return delete_link(c, row, cev.UserContactLinkDeleted())


def delete_link(c: sqlite3.Connection, row: store.LinkRow, event: cev.ChatEvent) -> Effects:
    fx = Effects(events=[event])
    store.set_contact_link(c, row.link_id, status=L_DELETED)
    conn = store.connection(c, row.connection_id)
    if conn is not None:
        store.set_connection(c, conn.connection_id, status=C_DELETED)
        if conn.agent_conn_id:
            fx.deletes.append(conn.agent_conn_id)
    for r in store.contact_requests_with_status(c, row.user_id, R_PENDING):
        if r.link_id == row.link_id:
            store.set_contact_request(c, r.request_id, status=R_REJECTED)
    return fx


def set_auto_accept(
    c: sqlite3.Connection, user: store.UserRow, on: bool, welcome: str | None
) -> cev.AddressView:
    row = _active(c, user)
    if welcome is not None and welcome.strip() == "":
        welcome = None
    store.set_contact_link(c, row.link_id, auto_accept=int(on), welcome=welcome if on else None)
    fresh = store.contact_link(c, row.link_id)
    assert fresh is not None
    return _view(fresh)


def pending(c: sqlite3.Connection, user: store.UserRow) -> list[cev.ContactRequestView]:
    return [request_view(r) for r in store.contact_requests_with_status(c, user.user_id, R_PENDING)]


def request_named(c: sqlite3.Connection, user: store.UserRow, name: str) -> store.RequestRow:
    for r in store.contact_requests_with_status(c, user.user_id, R_PENDING):
        if r.local_name == name.lstrip("@"):
            return r
    raise ChatError(f"no contact request from {name}")


def _pending_request(
    c: sqlite3.Connection, user: store.UserRow, request_id: int
) -> store.RequestRow:
    r = store.contact_request(c, request_id)
    if r is None or r.user_id != user.user_id:
        raise ChatError(f"no contact request {request_id}")
    if r.status != R_PENDING:
        raise ChatError(f"the contact request from {r.local_name} is {r.status} already")
    return r


# ---------------------------------------------------------------- requests


def on_request(c: sqlite3.Connection, agent_conn: str, inv_id: str, info: bytes) -> Effects:
    """REQ on our address: a contact request (accepted at once with auto-accept); on a
    group link, a new member (`group_links.on_request`). A replayed REQ changes nothing."""
    from parley.chat import group_links  # (they share the request rules)

    found = store.connection_and_user(c, agent_conn)
    if found is None or found[0].kind != K_ADDRESS:
        return Effects()
    conn, user = found
    row = store.contact_link_by_connection(c, conn.connection_id)
    if row is None or row.status != L_ACTIVE:
        return Effects()
    existing = store.contact_request_by_inv(c, inv_id)
    if existing is not None:
        # answered before the agent heard of it: answer it again
        return Effects(rejects=[inv_id] if existing.status in (R_REJECTED, R_KNOWN) else [])
    try:
        msg = cp.decode_chat_message(info)
    except cp.ChatMessageError as e:
        log.warning("contact request with bad info rejected: %s", e)
        return Effects(rejects=[inv_id])
    if not isinstance(msg.params, cp.XContact | cp.XInfo):
        log.warning("contact request with %s instead of a profile rejected", msg.event)
        return Effects(rejects=[inv_id])
    profile = msg.params.profile
    x_id = msg.params.x_contact_id if isinstance(msg.params, cp.XContact) else None
    if row.group_id is not None:
        return group_links.on_request(c, user, row, inv_id, profile, x_id)
    known = store.contact_of_x_contact_id(c, user.user_id, row.link_id, x_id) if x_id else None
    rid = store.insert_contact_request(
        c,
        user.user_id,
        row.link_id,
        inv_id,
        x_id,
        profile.display_name,
        profile.full_name,
        R_PENDING if known is None else R_KNOWN,
        known,
    )
    if known is not None:
        contact = store.contact_by_id(c, known)
        assert contact is not None
        req = store.contact_request(c, rid)
        assert req is not None
        event = cev.ContactAlreadyExists(views.contact(contact), request_view(req))
        return Effects(events=[event], rejects=[inv_id])
    req = store.contact_request(c, rid)
    assert req is not None
    fx = Effects(events=[cev.ReceivedContactRequest(request_view(req))], label="req:contact")
    if row.auto_accept:
        _, more = accept(c, user, rid)
        fx.merge(more)
    return fx


def accept(
    c: sqlite3.Connection, user: store.UserRow, request_id: int
) -> tuple[cev.Contact, Effects]:
    """`/ac NAME`: the contact, connecting; the agent joins the requester's invitation
    (OK: `request_accepted`); the address's welcome goes out on CON."""
    r = _pending_request(c, user, request_id)
    link = store.contact_link(c, r.link_id)
    if link is None or link.status != L_ACTIVE:
        raise ChatError("the address this request came to is deleted")
    contact_id = store.insert_contact(c, user.user_id, r.display_name, r.full_name, CT_CONNECTING)
    conn = store.insert_connection(c, K_CONTACT, contact_id=contact_id)
    store.set_contact_request(
        c, request_id, status=R_ACCEPTED, contact_id=contact_id, welcome=link.welcome
    )
    fx = Effects()
    info = cp.make(cp.XInfo(cp.Profile(user.display_name, user.full_name)))
    data = {"request_id": request_id}
    fx.call(c, user.user_id, conn, FN_REQUEST_ACCEPTED, data, accept_call(r.agent_inv_id, info))
    contact = store.contact_by_id(c, contact_id)
    assert contact is not None
    view = views.contact(contact)
    fx.events.append(cev.AcceptingContactRequest(view))
    return view, fx


def reject(c: sqlite3.Connection, user: store.UserRow, request_id: int) -> Effects:
    """`/rc NAME`: forgotten (the requester is not told)."""
    r = _pending_request(c, user, request_id)
    store.set_contact_request(c, request_id, status=R_REJECTED)
    fresh = store.contact_request(c, request_id)
    assert fresh is not None
    return Effects(
        events=[cev.ContactRequestRejected(request_view(fresh))], rejects=[r.agent_inv_id]
    )


def welcome_on_connect(
    c: sqlite3.Connection, user: store.UserRow, contact_id: int, agent_conn: str, fx: Effects
) -> None:
    """The contact accepted through our address is connected: send the welcome, once."""
    text = store.take_welcome(c, contact_id)
    if text is None:
        return
    try:
        msg = cp.make(cp.XMsgNew(cp.TextContent(text)))
        cp.encode_chat_message(msg)
    except cp.ChatMessageError as e:
        log.warning("welcome message not sent: %s", e)
        return
    item_id = store.insert_item(c, user.user_id, "snd", text, msg.msg_id, contact_id=contact_id)
    fx.send(c, agent_conn, msg, item_id)
    fx.events.append(cev.NewChatItem(views.item(c, item_id)))
