"""Chat items after they are made: delivery receipts, integrity items, edits, deletion
(for oneself, for everyone, moderation), reactions and quotes; our own commands and the
events received from contacts and members.

Rules run on the database thread, in the transaction given as their first argument (see
`effects`). A received change that cannot apply (someone else's message, an unknown one, a
moderation by a member without the role) changes nothing and is reported as `ItemRefused`.
In a group, a change of a message that has not arrived yet (a forward from the host can
overtake the author's direct message) is held, and applied, checked as if it came then,
when the message arrives (`apply_held`); held ones expire (`HELD_CHANGE_TTL`,
`HELD_CHANGES_MAX`) with a reason.
"""

from __future__ import annotations

import logging
import sqlite3

from parley.chat import contacts, groups, store, views
from parley.chat import events as cev
from parley.chat.effects import Effects
from parley.chat.groups import GroupMessage, pass_on
from parley.chat.model import (
    C_READY,
    D_RCV,
    D_SND,
    DEL_MARKED,
    DEL_MODERATED,
    G_ACTIVE,
    GONE_MEMBER,
    HELD_CHANGE_TTL,
    HELD_CHANGES_MAX,
    IC_CONN_EVENT,
    IC_INTEGRITY,
    IC_TEXT,
    ITEM_ERROR,
    ITEM_RCVD,
    ITEM_RCVD_BAD,
    ITEM_SENDING,
    ITEM_SENT,
    K_MEMBER_GROUP,
    ChatError,
    text_message,
)
from parley.protocol import chat as cp

log = logging.getLogger(__name__)

USER = "user"  # the reactor name of the user itself
CONTACT = "contact"  # of the contact, in a direct chat


def _role_rank(role: str) -> int:
    return cp.MEMBER_ROLES.index(role) if role in cp.MEMBER_ROLES else -1


# ---------------------------------------------------------------- receipts


def receipts_on(
    c: sqlite3.Connection,
    group_limit: int,
    user_id: int,
    contact_id: int | None,
    group_id: int | None,
) -> bool:
    """Whether we send delivery receipts in a group's chat (`group_id`), else a contact's:
    its own setting, else the user's; in groups only up to `group_limit` members
    (`ChatConfig.receipts_group_limit`); never in a chat that is neither."""
    if group_id is not None:
        if store.active_member_count(c, group_id) > group_limit:
            return False
        own = store.chat_receipts(c, group_id=group_id)
    elif contact_id is not None:
        own = store.chat_receipts(c, contact_id=contact_id)
    else:
        return False
    for_contacts, for_groups = store.receipt_settings(c, user_id)
    default = for_groups if group_id is not None else for_contacts
    return default if own is None else own


RECEIPTS = "receipts"
FULL_DELETE = "full_delete"


def _chat_ids(
    c: sqlite3.Connection, user: store.UserRow, contact: str | None, group: str | None
) -> tuple[int | None, int | None]:
    """The ids of the contact and the group with these names (None where no name)."""
    contact_id = contacts.named(c, user, contact).contact_id if contact is not None else None
    group_id = groups.named(c, user, group).group_id if group is not None else None
    return contact_id, group_id


def set_chat_setting(
    c: sqlite3.Connection,
    user: store.UserRow,
    kind: str,
    on: bool | None,
    contact: str | None,
    group: str | None,
    everyone: str | None,
) -> None:
    """Set delivery receipts (`RECEIPTS`) or full deletion (`FULL_DELETE`) for one contact
    or group (`on` None: follow the user's default), or the user's default: for receipts
    `everyone` = "contacts" or "groups" (clearing the chats' own settings), for full
    deletion "all" (the chats' own settings stay)."""
    contact_id, group_id = _chat_ids(c, user, contact, group)
    if kind == RECEIPTS and (contact_id or group_id):
        store.set_chat_receipts(c, on, contact_id=contact_id, group_id=group_id)
    elif kind == RECEIPTS and everyone in ("contacts", "groups"):
        assert everyone is not None
        store.set_user_receipts(c, user.user_id, everyone, bool(on))
        store.clear_chat_receipts(c, user.user_id, everyone)
    elif kind == FULL_DELETE and (contact_id or group_id):
        store.set_full_delete(c, on, contact_id=contact_id, group_id=group_id)
    elif kind == FULL_DELETE and everyone == "all":
        store.set_full_delete(c, on, user_id=user.user_id)
    else:
        everyone_is = "contacts/groups" if kind == RECEIPTS else "all"
        raise ChatError(f"name a contact, a group, or {everyone_is}")


def on_rcvd(c: sqlite3.Connection, agent_conn: str, agent_msg_id: int, status: str) -> Effects:
    """A delivery receipt for one of our agent messages: its item is `rcvd` (or
    `rcvd-bad-hash`); in a group its member's delivery is, and the item is once every
    member's is (`delivery_settled`; each member's receipt is an event with the item's
    status). A repeat, or a message that carried no item, changes nothing."""
    item_id = store.item_of_message(c, agent_conn, agent_msg_id)
    if item_id is None:
        return Effects()
    new = ITEM_RCVD if status == "ok" else ITEM_RCVD_BAD
    before = store.item(c, item_id)
    if before is None or not store.set_item_receipt(c, agent_conn, agent_msg_id, new):
        return Effects()
    if before.group_id is None and before.status in (ITEM_RCVD, ITEM_RCVD_BAD):
        return Effects()
    reason = "" if status == "ok" else "the message arrived with another hash"
    fx = delivery_settled(c, item_id, agent_conn, new, reason)
    fx.label = "rcvd"
    return fx


# ---------------------------------------------------------------- delivery per member

_RANK = {ITEM_SENDING: 0, ITEM_ERROR: 1, ITEM_SENT: 1, ITEM_RCVD: 2, ITEM_RCVD_BAD: 2}


def delivery_settled(
    c: sqlite3.Connection, item_id: int, agent_conn: str, status: str, reason: str
) -> Effects:
    """One delivery of our item settled: `sent` or `error` (the agent's SENT or MERR, or
    it refused the message), `rcvd`/`rcvd-bad-hash` (a receipt). A direct item takes the
    status (a receipt is not undone by a late SENT). A group item keeps one status per
    member, which only moves forward (sending, then sent or error, then rcvd), and its
    own status is derived from those of the members still in the group (`group_status`).
    The event carries the item's status; a member's error names the member."""
    found = store.member_delivery(c, item_id, agent_conn)
    if found is None:
        i = store.item(c, item_id)
        if i is None:
            return Effects()
        if _RANK.get(i.status, 0) < _RANK[status] or i.status == ITEM_SENDING:
            store.set_item_status(c, item_id, status)
        return Effects(events=[cev.ChatItemStatus(item_id, status, reason)])
    member_row, old = found
    if _RANK.get(old, 0) >= _RANK[status] and old != ITEM_SENDING:
        return Effects()
    store.set_member_delivery(c, item_id, member_row, status, reason)
    overall = group_status(c, item_id)
    if overall is not None:
        store.set_item_status(c, item_id, overall)
    m = store.member(c, member_row)
    if reason and m is not None:
        reason = f"{m.display_name}: {reason}"
    i = store.item(c, item_id)
    return Effects(events=[cev.ChatItemStatus(item_id, i.status if i else status, reason)])


def member_deliveries(
    c: sqlite3.Connection, user: store.UserRow, item_id: int
) -> list[cev.MemberDelivery]:
    """The delivery of one of the user's items to each member (none: not a sent group
    item)."""
    own_item(c, user, item_id)
    return [
        cev.MemberDelivery(views.member(c, member_row), status, reason)
        for member_row, status, reason, _ in store.member_deliveries(c, item_id)
    ]


def group_status(c: sqlite3.Connection, item_id: int) -> str | None:
    """A sent group item's status from its members' deliveries (those who left or were
    removed do not count): `rcvd` when every member has it (`rcvd-bad-hash` if one
    reported another hash), else `sent` when it reached the relay for one at least,
    `error` when every delivery failed, else `sending`. None: no member to count."""
    statuses = [s for _, s, _, m in store.member_deliveries(c, item_id) if m not in GONE_MEMBER]
    if not statuses:
        return None
    if all(s in (ITEM_RCVD, ITEM_RCVD_BAD) for s in statuses):
        return ITEM_RCVD_BAD if ITEM_RCVD_BAD in statuses else ITEM_RCVD
    if any(s in (ITEM_SENT, ITEM_RCVD, ITEM_RCVD_BAD) for s in statuses):
        return ITEM_SENT
    if all(s == ITEM_ERROR for s in statuses):
        return ITEM_ERROR
    return ITEM_SENDING


# ---------------------------------------------------------------- integrity


def integrity_text(integrity: str) -> str:
    """The agent's integrity report in words."""
    if integrity.startswith("skipped "):
        n = integrity.removeprefix("skipped ")
        return f"{n} skipped message{'' if n == '1' else 's'}"
    if integrity == "bad hash":
        return "bad message hash"
    if integrity.startswith("bad id"):
        return "bad message ID"
    return integrity


def integrity_item(
    c: sqlite3.Connection,
    user: store.UserRow,
    conn: store.ConnectionRow,
    integrity: str,
    agent_msg_id: int,
) -> Effects:
    """An integrity report (skipped messages, a bad hash or id) on an agent connection,
    as an item of its chat, once per agent message."""
    if not store.first_seen(c, f"integrity:{conn.agent_conn_id}", str(agent_msg_id)):
        return Effects()
    text = integrity_text(integrity)
    if conn.contact_id is not None:
        item_id = store.insert_item(
            c,
            user.user_id,
            D_RCV,
            text,
            None,
            contact_id=conn.contact_id,
            content_type=IC_INTEGRITY,
        )
    elif conn.member_row is not None:
        m = store.member(c, conn.member_row)
        if m is None:
            return Effects()
        item_id = store.insert_item(
            c,
            user.user_id,
            D_RCV,
            text,
            None,
            group_id=m.group_id,
            author=m.member_row,
            content_type=IC_INTEGRITY,
        )
    else:
        return Effects()
    view = views.item(c, item_id)
    return Effects(events=[cev.NewChatItem(view), cev.MsgIntegrityError(view, text)])


# ---------------------------------------------------------------- ratchet re-synchronisation


def on_rsync(
    c: sqlite3.Connection, agent_conn: str, state: str, reason: str, done: int = 0
) -> Effects:
    """The agent's report on re-agreeing a connection's keys: an event; an item "encryption
    re-negotiated" in the chat when it is done, once per completed re-negotiation (`done`
    counts them; the chat keeps the count it showed, so the event and the catch-up at
    start, `rsync_caught_up`, make one item between them)."""
    found = store.connection_and_user(c, agent_conn)
    if found is None:
        return Effects()
    new_item = store.show_rsync(c, agent_conn, state, done)
    conn, user = found
    contact = store.contact_by_id(c, conn.contact_id) if conn.contact_id else None
    member = store.member(c, conn.member_row) if conn.member_row else None
    if contact is None and member is None:
        return Effects()
    event = cev.RatchetSync(
        state,
        reason,
        views.contact(contact) if contact else None,
        views.group(c, member.group_id) if member else None,
        views.member(c, member.member_row) if member else None,
    )
    fx = Effects(events=[event], label=f"rsync:{state}")
    if state == "ok" and new_item:
        item_id = store.insert_item(
            c,
            user.user_id,
            D_RCV,
            "encryption re-negotiated",
            None,
            contact_id=contact.contact_id if contact else None,
            group_id=member.group_id if member else None,
            author=member.member_row if member else None,
            content_type=IC_CONN_EVENT,
        )
        fx.events.insert(0, cev.NewChatItem(views.item(c, item_id)))
    return fx


def rsync_caught_up(c: sqlite3.Connection, agent_conn: str, state: str, done: int) -> Effects:
    """At start, the agent's re-synchronisation state of a connection (`state`, `done`
    from its `ConnectionStatus`): what the chat has not shown yet is shown as by
    `on_rsync` (its RSYNC event was lost in a crash); a state still "required" is
    reported again (the re-negotiation it asks for may not have been started)."""
    shown = store.rsync_shown(c).get(agent_conn)
    if shown is None:
        return Effects()
    if done < shown[1]:  # the agent's database went back to a copy: count from there
        store.reset_rsync_done(c, agent_conn, done)
    elif (state, done) == shown and state != "required":
        return Effects()
    return on_rsync(c, agent_conn, state, "", done)


def sync_target(
    c: sqlite3.Connection,
    user: store.UserRow,
    contact: str | None,
    group: str | None,
    member: str | None,
) -> str:
    """The agent connection of a contact, or of a group member (its group connection)."""
    if contact is not None:
        conn = store.contact_connection(c, contacts.named(c, user, contact).contact_id)
    else:
        assert group is not None and member is not None
        g = groups.named(c, user, group)
        m = groups.member_named(c, g.group_id, member)
        conn = store.member_connection(c, m.member_row, K_MEMBER_GROUP)
    if conn is None or conn.agent_conn_id is None or conn.status != C_READY:
        raise ChatError("not connected: nothing to re-negotiate")
    return conn.agent_conn_id


# ---------------------------------------------------------------- our own commands


def own_item(c: sqlite3.Connection, user: store.UserRow, item_id: int) -> store.ItemRow:
    i = store.item(c, item_id)
    if i is None or i.user_id != user.user_id:
        raise ChatError(f"no message {item_id}")
    return i


def _send_to_chat(c: sqlite3.Connection, i: store.ItemRow, msg: cp.ChatMessage) -> Effects:
    """Send a message about item `i` where the item's chat goes."""
    fx = Effects()
    if i.contact_id is not None:
        conn = store.contact_connection(c, i.contact_id)
        if conn is None or conn.status != C_READY or conn.agent_conn_id is None:
            raise ChatError("the contact is not connected")
        fx.send(c, conn.agent_conn_id, msg)
    else:
        assert i.group_id is not None
        group = store.group_by_id(c, i.group_id)
        if group is None or group.status != G_ACTIVE:
            raise ChatError("the group is not active")
        body = cp.encode_chat_message(msg)
        for agent_conn in store.ready_group_conns(c, i.group_id):
            fx.send(c, agent_conn, body)
        store.hold_for_connecting_members(c, i.group_id, body, None)
    return fx


def _checked(params: cp.Params) -> cp.ChatMessage:
    try:
        msg = cp.make(params)
        cp.encode_chat_message(msg)
    except cp.ChatMessageError as e:
        raise ChatError(f"cannot send this: {e.reason}") from e
    return msg


def update(
    c: sqlite3.Connection, user: store.UserRow, item_id: int, text: str
) -> tuple[cev.ChatItem, Effects]:
    """Edit our own message (`/_update item`, `! @bob (old) new`): x.msg.update."""
    i = own_item(c, user, item_id)
    if i.direction != D_SND or i.content_type != IC_TEXT or i.shared_msg_id is None:
        raise ChatError("only your own messages can be edited")
    if i.deleted:
        raise ChatError("this message is deleted")
    if text == i.text:
        return views.item(c, item_id), Effects()
    edit = i.edit + 1
    msg = _checked(cp.XMsgUpdate(i.shared_msg_id, cp.TextContent(text), edit))
    fx = _send_to_chat(c, i, msg)
    store.keep_original(c, item_id, i.text, i.created_at)
    store.edit_item(c, item_id, edit, text)
    view = views.item(c, item_id)
    fx.events.append(cev.ChatItemUpdated(view))
    return view, fx


def delete(
    c: sqlite3.Connection, user: store.UserRow, item_id: int, broadcast: bool
) -> tuple[cev.ChatItem, Effects]:
    """Delete an item for ourselves (`internal`), or our own message for everyone
    (`broadcast`: x.msg.del). Either way it is gone here."""
    i = own_item(c, user, item_id)
    view = views.item(c, item_id)
    fx = Effects()
    if broadcast:
        if i.direction != D_SND or i.shared_msg_id is None:
            raise ChatError("only your own messages can be deleted for everyone")
        fx = _send_to_chat(c, i, _checked(cp.XMsgDel(i.shared_msg_id)))
    store.delete_item(c, item_id)
    fx.events.append(cev.ChatItemDeleted(view, removed=True, by_user=True))
    return view, fx


def moderate(
    c: sqlite3.Connection, user: store.UserRow, item_id: int
) -> tuple[cev.ChatItem, Effects]:
    """(admin, owner) delete a member's message in a group for everyone."""
    i = own_item(c, user, item_id)
    if i.group_id is None or i.shared_msg_id is None or i.content_type != IC_TEXT:
        raise ChatError("only group messages can be moderated")
    me = store.user_member(c, i.group_id)
    author = store.member(c, i.author_member) if i.author_member else me
    assert author is not None
    if _role_rank(me.role) < _role_rank("admin") or _role_rank(me.role) < _role_rank(author.role):
        raise ChatError(f"your role ({me.role}) cannot moderate messages of a {author.role}")
    msg = _checked(cp.XMsgDel(i.shared_msg_id, author.member_id))
    fx = _send_to_chat(c, i, msg)
    store.mark_item_deleted(c, item_id, DEL_MODERATED, me.member_row)
    view = views.item(c, item_id)
    fx.events.append(cev.ChatItemDeleted(view, removed=False, by_user=True, moderated_by=None))
    return view, fx


def react(
    c: sqlite3.Connection, user: store.UserRow, item_id: int, emoji: str, add: bool
) -> tuple[cev.ChatItem, Effects]:
    """Add or remove our reaction (`/_reaction`): x.msg.react."""
    i = own_item(c, user, item_id)
    if not cp.is_valid_emoji(emoji):
        raise ChatError(f"not an emoji reaction: {emoji!r}")
    if i.shared_msg_id is None or i.content_type != IC_TEXT or i.deleted:
        raise ChatError("this item cannot get reactions")
    mine = store.reactions_of(c, item_id, USER)
    if add and emoji not in mine and len(mine) >= cp.MAX_REACTIONS_PER_MEMBER:
        raise ChatError(f"at most {cp.MAX_REACTIONS_PER_MEMBER} reactions per message")
    if not store.set_reaction(c, item_id, USER, emoji, add):
        return views.item(c, item_id), Effects()
    member_id = None
    if i.group_id is not None:
        author = store.member(c, i.author_member) if i.author_member else None
        member_id = (author or store.user_member(c, i.group_id)).member_id
    msg = _checked(cp.XMsgReact(i.shared_msg_id, cp.Reaction(emoji), add, member_id))
    fx = _send_to_chat(c, i, msg)
    view = views.item(c, item_id)
    fx.events.append(cev.ChatItemReaction(view, emoji, add, None))
    return view, fx


def send_text(
    c: sqlite3.Connection,
    user: store.UserRow,
    text: str,
    quote: int | None,
    *,
    contact: str | None = None,
    group: str | None = None,
) -> tuple[cev.ChatItem, Effects]:
    """Send `text` to the contact or the group of that name; `quote`: the id of an item of
    that chat it replies to."""
    quoted, kept = None, None
    if quote is not None:
        contact_id, group_id = _chat_ids(c, user, contact, group)
        quoted, kept = quote_of(c, user, quote, contact_id=contact_id, group_id=group_id)
    msg = text_message(text, quoted)
    if group is not None:
        return groups.send_message(c, user, group, msg, text, kept)
    assert contact is not None
    return contacts.send_message(c, user, contact, msg, text, kept)


def quote_of(
    c: sqlite3.Connection,
    user: store.UserRow,
    item_id: int,
    *,
    contact_id: int | None = None,
    group_id: int | None = None,
) -> tuple[cp.QuotedMsg, store.ItemQuote]:
    """The quote of item `item_id` for a reply in the given chat, and how our own item
    keeps it; ChatError if the item is not a message of that chat."""
    i = store.item(c, item_id)
    same_chat = i is not None and (
        (contact_id is not None and i.contact_id == contact_id)
        or (group_id is not None and i.group_id == group_id)
    )
    if i is None or not same_chat or i.user_id != user.user_id:
        raise ChatError(f"no message {item_id} in this chat to quote")
    if i.shared_msg_id is None or i.content_type != IC_TEXT or i.deleted:
        raise ChatError("this item cannot be quoted")
    sent = i.direction == D_SND
    member_id = None
    if group_id is not None:
        author = store.member(c, i.author_member) if i.author_member else None
        member_id = (author or store.user_member(c, group_id)).member_id
    quote = cp.QuotedMsg(cp.MsgRef(i.shared_msg_id, sent, member_id), cp.TextContent(i.text))
    return quote, (item_id, i.shared_msg_id, i.text, sent)


# ---------------------------------------------------------------- received changes


def _refused(chat: str, sender: str, msg: cp.ChatMessage, reason: str) -> Effects:
    log.info("%s from %s in %s ignored: %s", msg.event, sender, chat, reason)
    return Effects(events=[cev.ItemRefused(chat, sender, msg.event, reason)])


def _apply_update(c: sqlite3.Connection, i: store.ItemRow, p: cp.XMsgUpdate) -> Effects:
    if i.deleted:
        return Effects()
    store.keep_original(c, i.item_id, i.text, i.created_at)
    if not store.edit_item(c, i.item_id, p.edit, p.content.text):
        return Effects()  # this edit came before
    fresh = store.item(c, i.item_id)
    if fresh is None or fresh.edit != p.edit:
        return Effects()  # a newer edit is shown already: kept in the history only
    return Effects(events=[cev.ChatItemUpdated(views.item(c, i.item_id))])


def _apply_author_delete(c: sqlite3.Connection, i: store.ItemRow) -> Effects:
    """The author deleted its message for everyone: marked deleted here (its text stays
    in the store, shown as deleted; delete it for yourself to remove it), or removed
    when the chat has full deletion on (`_removed`)."""
    removed = _removed(c, i, None)
    if removed is not None:
        return removed
    if not store.mark_item_deleted(c, i.item_id, DEL_MARKED):
        return Effects()
    view = views.item(c, i.item_id)
    return Effects(events=[cev.ChatItemDeleted(view, removed=False, by_user=False)])


def _removed(c: sqlite3.Connection, i: store.ItemRow, moderator: int | None) -> Effects | None:
    """With full deletion on in the item's chat (`set_chat_setting`), a received deletion
    for everyone (the author's, or a moderation by `moderator`) removes the item; None
    when it is off (the item is marked instead)."""
    if not store.full_delete_on(c, i.user_id, contact_id=i.contact_id, group_id=i.group_id):
        return None
    view = views.item(c, i.item_id)
    store.delete_item(c, i.item_id)
    by = views.member(c, moderator) if moderator is not None else None
    return Effects(events=[cev.ChatItemDeleted(view, removed=True, by_user=False, moderated_by=by)])


def _apply_reaction(
    c: sqlite3.Connection, i: store.ItemRow, reactor: str, who: str, p: cp.XMsgReact
) -> Effects | str:
    """The reaction applied; or why not."""
    if i.deleted or i.content_type != IC_TEXT:
        return "the message is deleted"
    emoji = p.reaction.emoji
    have = store.reactions_of(c, i.item_id, reactor)
    if p.add and emoji not in have and len(have) >= cp.MAX_REACTIONS_PER_MEMBER:
        return f"more than {cp.MAX_REACTIONS_PER_MEMBER} reactions to one message"
    if not store.set_reaction(c, i.item_id, reactor, emoji, p.add):
        return Effects()
    view = views.item(c, i.item_id)
    return Effects(events=[cev.ChatItemReaction(view, emoji, p.add, who)])


def contact_change(
    c: sqlite3.Connection, user: store.UserRow, contact: store.ContactRow, msg: cp.ChatMessage
) -> Effects:
    """From a contact: `x.msg.update` or `x.msg.del` of one of its own messages, or
    `x.msg.react` to any message of the chat."""
    p = msg.params
    assert isinstance(p, cp.XMsgUpdate | cp.XMsgDel | cp.XMsgReact)
    i = _contacts_own(c, contact, msg, p.msg_id, own=not isinstance(p, cp.XMsgReact))
    if isinstance(i, Effects):
        return i
    if isinstance(p, cp.XMsgUpdate):
        return _apply_update(c, i, p)
    if isinstance(p, cp.XMsgReact):
        out = _apply_reaction(c, i, CONTACT, contact.local_name, p)
    elif p.member_id is None:
        return _apply_author_delete(c, i)
    else:  # moderation is for groups only
        out = "not the contact's own message"
    if isinstance(out, str):
        return _refused(f"@{contact.local_name}", contact.local_name, msg, out)
    return out


def _contacts_own(
    c: sqlite3.Connection, contact: store.ContactRow, msg: cp.ChatMessage, msg_id: str, own: bool
) -> store.ItemRow | Effects:
    """The contact chat's item `msg_id` (with `own`, only one the contact wrote), or the
    refusal of `msg`."""
    chat = f"@{contact.local_name}"
    i = store.item_by_msg(c, msg_id, contact_id=contact.contact_id)
    if i is None:
        return _refused(chat, contact.local_name, msg, "no such message")
    if own and i.direction != D_RCV:
        return _refused(chat, contact.local_name, msg, "not the contact's own message")
    return i


def _group_item(
    c: sqlite3.Connection, g: GroupMessage, msg_id: str, author_id: str | None
) -> store.ItemRow | None:
    """The group's item `msg_id` written by member `author_id` (None: the sender)."""
    i = store.item_by_msg(c, msg_id, group_id=g.group_id)
    if i is None:
        return None
    author_id = author_id or g.sender.member_id
    if i.author_member is None:  # ours
        return i if author_id == g.me.member_id else None
    author = store.member(c, i.author_member)
    return i if author is not None and author.member_id == author_id else None


def _host_forwards(c: sqlite3.Connection, g: GroupMessage, fx: Effects) -> Effects:
    pass_on(c, g, fx)
    return fx


def group_update(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """`x.msg.update` from a member: only the author's own messages."""
    assert isinstance(g.msg.params, cp.XMsgUpdate)
    msg_id = g.msg.params.msg_id
    i = _group_item(c, g, msg_id, None)
    if i is None:
        return _hold_or_refuse(c, g, msg_id, None, "no such message from this member")
    return _host_forwards(c, g, _apply_update(c, i, g.msg.params))


def group_delete(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """`x.msg.del` from a member: its own message, or a moderation by an admin or owner
    (whose role is not below the author's)."""
    assert isinstance(g.msg.params, cp.XMsgDel)
    p = g.msg.params
    chat, who = f"#{g.group.local_name}", g.sender.display_name
    if p.member_id is None or p.member_id == g.sender.member_id:
        i = _group_item(c, g, p.msg_id, None)
        if i is None:
            return _hold_or_refuse(c, g, p.msg_id, None, "no such message from this member")
        return _host_forwards(c, g, _apply_author_delete(c, i))
    if p.member_id == g.me.member_id:
        author_role = g.me.role
    else:
        author = store.member_by_id(c, g.group_id, p.member_id)
        if author is None:
            return _refused(chat, who, g.msg, "moderation of an unknown member's message")
        author_role = author.role
    rank = _role_rank(g.sender.role)
    if rank < _role_rank("admin") or rank < _role_rank(author_role):
        return _refused(
            chat, who, g.msg, f"a {g.sender.role} cannot moderate messages of a {author_role}"
        )
    i = _group_item(c, g, p.msg_id, p.member_id)
    fx = Effects()
    if i is None:
        return _hold_or_refuse(c, g, p.msg_id, p.member_id, "no such message of that member")
    removed = _removed(c, i, g.sender.member_row)
    if removed is not None:
        return _host_forwards(c, g, removed)
    if store.mark_item_deleted(c, i.item_id, DEL_MODERATED, g.sender.member_row):
        view = views.item(c, i.item_id)
        moderator = views.member(c, g.sender.member_row)
        fx.events.append(
            cev.ChatItemDeleted(view, removed=False, by_user=False, moderated_by=moderator)
        )
    return _host_forwards(c, g, fx)


def group_react(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """`x.msg.react` from a member: each member counts once per emoji."""
    assert isinstance(g.msg.params, cp.XMsgReact)
    p = g.msg.params
    chat, who = f"#{g.group.local_name}", g.sender.display_name
    i = _group_item(c, g, p.msg_id, p.member_id)
    if i is None:
        return _hold_or_refuse(c, g, p.msg_id, p.member_id, "no such message")
    out = _apply_reaction(c, i, f"member:{g.sender.member_row}", who, p)
    if isinstance(out, str):
        return _refused(chat, who, g.msg, out)
    return _host_forwards(c, g, out)


# ---------------------------------------------------------------- changes that came first


def _hold_or_refuse(
    c: sqlite3.Connection, g: GroupMessage, msg_id: str, author_id: str | None, reason: str
) -> Effects:
    """A change of a message we have no item for. If no message of the group has that id,
    it may still come (the change overtook it): held, durably, in the order of arrival
    (the host passes it on now, as it would have); otherwise refused with `reason`."""
    author_id = author_id or g.sender.member_id
    known = store.item_by_msg(c, msg_id, group_id=g.group_id) is not None
    chat, who = f"#{g.group.local_name}", g.sender.display_name
    if known or author_id == g.me.member_id:  # (ours would be here)
        return _refused(chat, who, g.msg, reason)
    if store.was_seen(c, store.member_scope(g.group_id, author_id), msg_id):
        return _refused(chat, who, g.msg, "the message is no longer here")
    body = cp.encode_chat_message(g.msg)
    store.hold_change(c, g.group_id, msg_id, author_id, g.sender.member_row, body)
    log.info("%s from %s held until message %s arrives", g.msg.event, g.sender.display_name, msg_id)
    fx = expire_held(c, store.now(), g.group_id)
    return _host_forwards(c, g, fx)


def expire_held(c: sqlite3.Connection, now: float, group_id: int | None = None) -> Effects:
    """Drop the held changes whose message did not come within `HELD_CHANGE_TTL` (of one
    group, and there the oldest beyond `HELD_CHANGES_MAX`), each with its reason."""
    fx = Effects()
    keep = HELD_CHANGES_MAX if group_id is not None else None
    for h in store.take_stale_held_changes(c, now - HELD_CHANGE_TTL, group_id, keep):
        if h.created_at < now - HELD_CHANGE_TTL:
            hours = HELD_CHANGE_TTL / 3600
            reason = f"its message did not arrive within {hours:g} hours"
        else:
            reason = f"more than {HELD_CHANGES_MAX} changes wait for their messages"
        fx.merge(_dropped(c, h, reason))
    return fx


def _dropped(c: sqlite3.Connection, h: store.HeldChangeRow, reason: str) -> Effects:
    group = store.group_by_id(c, h.group_id)
    sender = store.member(c, h.sender_row)
    msg = cp.decode_chat_message(h.body)
    chat = f"#{group.local_name}" if group else "#?"
    return _refused(chat, sender.display_name if sender else "?", msg, reason)


HELD_EVENTS = {
    cp.XMsgUpdate: group_update,
    cp.XMsgDel: group_delete,
    cp.XMsgReact: group_react,
}


def apply_held(c: sqlite3.Connection, g: GroupMessage, msg_id: str) -> Effects:
    """Message `msg_id` of the group arrived (in `g`): the changes held for it are applied
    in the order they came, each checked now as its handler checks a change (the author,
    the roles); exactly once, as they are no longer held. One held too long is dropped."""
    fx = Effects()
    if store.item_by_msg(c, msg_id, group_id=g.group_id) is None:
        return fx  # (refused: the held ones wait, and expire)
    now = store.now()
    for h in store.take_held_changes(c, g.group_id, msg_id):
        sender = store.member(c, h.sender_row)
        if sender is None:
            continue
        if h.created_at < now - HELD_CHANGE_TTL:
            fx.merge(_dropped(c, h, "its message arrived too late"))
            continue
        msg = cp.decode_chat_message(h.body)
        handler = HELD_EVENTS.get(type(msg.params))
        if handler is None:
            continue
        me = store.user_member(c, g.group_id)
        # (forwarded: the host passed it on when it was held)
        fx.merge(handler(c, GroupMessage(g.user, g.conn, sender, g.group, me, msg, True)))
    return fx
