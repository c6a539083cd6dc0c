"""What the chat tells its front ends (terminal, bot API, demo): views and events."""

from __future__ import annotations

from typing import Generic, TypeVar, dataclass_transform

import msgspec

T = TypeVar("T")


class User(msgspec.Struct, frozen=True):
    user_id: int
    display_name: str
    full_name: str


class Contact(msgspec.Struct, frozen=True):
    contact_id: int
    name: str
    display_name: str
    full_name: str
    status: str


class Group(msgspec.Struct, frozen=True):
    group_id: int
    name: str
    display_name: str
    full_name: str
    status: str


class Member(msgspec.Struct, frozen=True):
    group_id: int
    member_row: int
    member_id: str
    name: str
    full_name: str
    role: str
    category: str
    status: str
    connection: str | None  # the member's group connection status, if there is one
    last_error: str | None
    contact_id: int | None


class Quote(msgspec.Struct, frozen=True):
    """What an item quotes: the quoted item if we have it, else only its text."""

    msg_id: str
    text: str
    sent: bool  # the quoting side sent the quoted message
    item_id: int | None = None


class ReactionCount(msgspec.Struct, frozen=True):
    emoji: str
    count: int
    by_user: bool  # we are among those who reacted so


class ChatItem(msgspec.Struct, frozen=True):
    item_id: int
    direction: str  # "snd" or "rcv"
    text: str
    status: str
    created_at: float
    contact: Contact | None = None
    group: Group | None = None
    author: Member | None = None
    shared_msg_id: str | None = None
    content_type: str = "text"  # or "rcvIntegrityError", "rcvConnEvent"
    edited: bool = False
    deleted: str | None = None  # "deleted" (marked, by its author) or "moderated"
    deleted_by: Member | None = None  # who moderated it
    quote: Quote | None = None
    reactions: list[ReactionCount] = msgspec.field(default_factory=list)


class MemberDelivery(msgspec.Struct, frozen=True):
    """A sent group item's delivery to one member: `status` is sending, sent, rcvd,
    rcvd-bad-hash or error (`reason` says why)."""

    member: Member
    status: str
    reason: str = ""


class AddressView(msgspec.Struct, frozen=True):
    """The user's long-term contact address (`/ad`, `/sa`)."""

    link: str
    auto_accept: bool
    welcome: str | None


class ContactRequestView(msgspec.Struct, frozen=True):
    """Someone asked to connect through our address (`/ac NAME`, `/rc NAME`)."""

    request_id: int
    name: str  # the local name to accept or reject it by
    display_name: str
    full_name: str
    created_at: float
    contact_id: int | None = None  # set when the requester is a contact already


class GroupLinkView(msgspec.Struct, frozen=True):
    """A group's link: whoever joins it becomes a member with `role`."""

    group: Group
    link: str
    role: str


# ---------------------------------------------------------------- events


def camel_case(class_name: str) -> str:
    """A struct's tag (its "type" on the wire): the class name, camelCase."""
    return class_name[0].lower() + class_name[1:]


# (for type checkers, as at run time, its subclasses are frozen without saying so)
@dataclass_transform(frozen_default=True, field_specifiers=(msgspec.field,))
class _Event(msgspec.Struct, frozen=True, tag=camel_case):
    """Base of every event: tagged with its class name, camelCase."""


# contacts


class _ContactEvent(_Event):
    contact: Contact


class ContactConnected(_ContactEvent): ...


class ContactDeleted(_ContactEvent): ...


class AcceptingContactRequest(_ContactEvent):
    """A contact request was accepted (by us or by auto-accept): the contact connects."""


class ContactAlreadyExists(_ContactEvent):
    """A contact request from someone we are connected to already."""

    request: ContactRequestView


class GroupInvitationRefused(_ContactEvent):
    """A contact's invitation to a group that we did not take (the inviter's role does not
    allow it, or we are in that group already): nothing was stored."""

    group_name: str
    reason: str


# the address and contact requests


class UserContactLinkCreated(_Event):
    """Our long-term address is ready (the link stays the same until it is deleted)."""

    link: str


class UserContactLinkDeleted(_Event): ...


class _RequestEvent(_Event):
    request: ContactRequestView


class ReceivedContactRequest(_RequestEvent): ...


class ContactRequestRejected(_RequestEvent): ...


# profiles


class _Change(_Event, Generic[T]):
    """A profile changed: as it was, as it is."""

    before: T
    after: T


class ContactUpdated(_Change[Contact]):
    """A contact announced a new profile (x.info)."""


class GroupUpdated(_Change[Group]):
    """The group's profile changed (x.grp.info from an owner; `by` None: we changed it)."""

    by: Member | None


class UserProfileUpdated(_Change[User]): ...


# groups


class _GroupEvent(_Event):
    group: Group


class GroupMemberUpdated(_GroupEvent):
    """A member announced a new profile in the group (x.info); its shown name stays
    unique in the group."""

    before: Member
    after: Member


class ReceivedGroupInvitation(_GroupEvent):
    contact: Contact
    role: str


class UserJoinedGroup(_GroupEvent): ...


class GroupLinkCreated(_Event):
    link: GroupLinkView


class GroupLinkDeleted(_GroupEvent): ...


class _GroupEndedBy(_GroupEvent):
    by: Member | None  # None: we ended it


class UserRemoved(_GroupEndedBy, tag="deletedMemberUser"): ...


class GroupDeleted(_GroupEndedBy): ...


# members


class _MemberEvent(_GroupEvent):
    member: Member


class JoinedGroupMember(_MemberEvent):
    """(host) the invited member connected to us and joined the group."""


class MemberAnnounced(_MemberEvent):
    """The host added a new member; we will connect to it."""


class ConnectedToGroupMember(_MemberEvent): ...


class MemberConnecting(_MemberEvent):
    """Progress on a member connection (introduced, links sent, ...)."""


class MemberRoleUpdated(_MemberEvent):
    """A member's role changed (`by` None: we changed it)."""

    from_role: str
    to_role: str
    by: Member | None


class MemberLeft(_MemberEvent, tag="leftMember"): ...


class MemberRemoved(_MemberEvent, tag="deletedMember"):
    by: Member | None


class _MemberRefused(_MemberEvent):
    reason: str


class GroupMessageRefused(_MemberRefused):
    """A member sent what its role does not allow: dropped (an observer's message, say)."""


class MemberFailed(_MemberRefused):
    """The connection to a member failed (`reason` says how)."""


# items


class _ItemEvent(_Event):
    item: ChatItem


class NewChatItem(_ItemEvent): ...


class ChatItemUpdated(_ItemEvent):
    """An item's text was edited (by us, or by its author)."""


class ChatItemDeleted(_ItemEvent):
    """An item was deleted: `item` as it was; `removed` if it is gone (else marked);
    `by_user`: we deleted it; `moderated_by`: the admin or owner who did."""

    removed: bool
    by_user: bool
    moderated_by: Member | None = None


class ChatItemReaction(_ItemEvent):
    """A reaction was added or removed (`by`: who; None: we)."""

    emoji: str
    added: bool
    by: str | None = None


class MsgIntegrityError(_ItemEvent):
    """Messages were skipped, or one came with a bad hash or id: shown as `item`."""

    error: str


class ChatItemStatus(_Event):
    item_id: int
    status: str
    reason: str = ""


class ItemRefused(_Event):
    """A received edit, deletion, reaction or quote that was not applied, and why."""

    chat: str
    sender: str
    event: str
    reason: str


# connections


class InvitationReady(_Event):
    connection_id: int
    link: str


class RatchetSync(_Event):
    """The encryption of a contact's or member's connection: "required" (messages cannot
    be decrypted), "started", "agreed", "ok" (re-negotiated: messages flow again)."""

    state: str
    reason: str = ""
    contact: Contact | None = None
    group: Group | None = None
    member: Member | None = None


class ConnectionFailed(_Event):
    connection_id: int
    reason: str


class RelayStatus(_Event):
    relay: str
    up: bool
    connections: int


ChatEvent = (
    InvitationReady
    | ContactConnected
    | ContactDeleted
    | UserContactLinkCreated
    | UserContactLinkDeleted
    | ReceivedContactRequest
    | AcceptingContactRequest
    | ContactRequestRejected
    | ContactAlreadyExists
    | ContactUpdated
    | GroupMemberUpdated
    | GroupUpdated
    | UserProfileUpdated
    | GroupLinkCreated
    | GroupLinkDeleted
    | MemberRoleUpdated
    | GroupMessageRefused
    | ReceivedGroupInvitation
    | GroupInvitationRefused
    | UserJoinedGroup
    | JoinedGroupMember
    | MemberAnnounced
    | ConnectedToGroupMember
    | MemberConnecting
    | MemberFailed
    | MemberLeft
    | MemberRemoved
    | UserRemoved
    | GroupDeleted
    | NewChatItem
    | ChatItemStatus
    | ChatItemUpdated
    | ChatItemDeleted
    | ChatItemReaction
    | MsgIntegrityError
    | RatchetSync
    | ItemRefused
    | ConnectionFailed
    | RelayStatus
)


def describe(event: ChatEvent) -> str:
    """The event in plain words, as the terminal shows it."""
    match event:
        case InvitationReady(_, link):
            return f"pass this invitation link to your contact: {link}"
        case ContactConnected(contact):
            return f"{contact.name}: contact is connected"
        case ContactDeleted(contact):
            return f"{contact.name}: contact deleted"
        case UserContactLinkCreated(link):
            return f"your chat address: {link}"
        case UserContactLinkDeleted():
            return "your chat address is deleted"
        case ReceivedContactRequest(req):
            return (
                f"{req.name} wants to connect to you; to accept: /ac {req.name}, "
                f"to reject: /rc {req.name}"
            )
        case AcceptingContactRequest(contact):
            return f"{contact.name}: accepting contact request..."
        case ContactRequestRejected(req):
            return f"{req.name}: contact request rejected"
        case ContactAlreadyExists(contact, _):
            return f"{contact.name}: contact already exists (a new request was ignored)"
        case ContactUpdated(before, after):
            full = f" ({after.full_name})" if after.full_name else ""
            return f"contact {before.name} updated the profile: {after.name}{full}"
        case GroupMemberUpdated(group, before, after):
            full = f" ({after.full_name})" if after.full_name else ""
            return f"#{group.name}: member {before.name} updated the profile: {after.name}{full}"
        case GroupUpdated(before, after, by):
            who = by.name if by else "you"
            full = f" ({after.full_name})" if after.full_name else ""
            return f"#{before.name}: {who} updated the group profile: #{after.name}{full}"
        case UserProfileUpdated(_, after):
            full = f" ({after.full_name})" if after.full_name else ""
            return f"your profile is updated: {after.display_name}{full}"
        case GroupLinkCreated(view):
            return (
                f"#{view.group.name}: group link created (new members join as "
                f"{view.role}): {view.link}"
            )
        case GroupLinkDeleted(group):
            return f"#{group.name}: group link deleted"
        case MemberRoleUpdated(group, member, old, new, by):
            who = by.name if by else "you"
            return f"#{group.name}: {who} changed the role of {member.name} from {old} to {new}"
        case GroupMessageRefused(group, member, reason):
            return f"#{group.name}: a message from {member.name} was refused: {reason}"
        case GroupInvitationRefused(contact, group_name, reason):
            return f"{contact.name} invited you to #{group_name}: refused, {reason}"
        case ReceivedGroupInvitation(group, contact, role):
            return (
                f"#{group.name}: {contact.name} invites you to join the group as {role}; "
                f"to join: /j {group.name}"
            )
        case UserJoinedGroup(group):
            return f"#{group.name}: you joined the group"
        case JoinedGroupMember(group, member):
            return f"#{group.name}: {member.name} joined the group"
        case MemberAnnounced(group, member):
            return f"#{group.name}: new member {member.name} is connecting"
        case ConnectedToGroupMember(group, member):
            return f"#{group.name}: member {member.name} is connected"
        case MemberConnecting(group, member):
            return f"#{group.name}: member {member.name} is connecting ({member.status})"
        case MemberFailed(group, member, reason):
            return f"#{group.name}: connection to {member.name} failed: {reason}"
        case MemberLeft(group, member):
            return f"#{group.name}: {member.name} left the group"
        case MemberRemoved(group, member, by):
            who = by.name if by else "you"
            return f"#{group.name}: {who} removed {member.name} from the group"
        case UserRemoved(group, by):
            return f"#{group.name}: {by.name if by else 'the host'} removed you from the group"
        case GroupDeleted(group, by):
            return f"#{group.name}: {by.name if by else 'you'} deleted the group"
        case NewChatItem(item):
            return describe_item(item)
        case ChatItemStatus(item_id, status, reason):
            return f"message {item_id}: {status}" + (f" ({reason})" if reason else "")
        case ChatItemUpdated(item):
            return describe_item(item)
        case ChatItemDeleted(item, removed, _, moderated_by):
            how = f"moderated by {moderated_by.name}" if moderated_by else "deleted"
            return f"{_chat_of(item)}: message {item.item_id} {how}" + (
                "" if removed else f": {item.text}"
            )
        case ChatItemReaction(item, emoji, added, by):
            who = by or "you"
            verb = "reacted" if added else "removed the reaction"
            return f"{_chat_of(item)}: {who} {verb} {emoji} to: {item.text}"
        case MsgIntegrityError(item, error):
            return f"{_chat_of(item)}: {error}"
        case RatchetSync(state, reason, contact, group, member):
            who = (
                f"@{contact.name}"
                if contact
                else f"#{group.name if group else '?'} " + (member.name if member else "?")
            )
            words = {
                "required": "messages cannot be decrypted: encryption re-negotiation required",
                "started": "re-negotiating encryption...",
                "agreed": "encryption agreed, waiting for the first message",
                "ok": "encryption re-negotiated",
            }.get(state, state)
            return f"{who}: {words}" + (f" ({reason})" if reason else "")
        case ItemRefused(chat, sender, what, reason):
            return f"{chat}: {what} from {sender} ignored: {reason}"
        case ConnectionFailed(connection_id, reason):
            return f"connection {connection_id} failed: {reason}"
        case RelayStatus(relay, up, n):
            state = "reachable again" if up else "unreachable"
            return f"relay {relay} is {state} ({n} connections)"
    return repr(event)


def _chat_of(item: ChatItem) -> str:
    if item.group is not None:
        return f"#{item.group.name}"
    return f"@{item.contact.name}" if item.contact else "?"


def item_text(item: ChatItem) -> str:
    """The item's text with its marks: quote, edited, deleted, receipt, reactions."""
    text = item.text
    if item.content_type != "text":
        text = f"[{text}]"
    if item.quote is not None:
        text = f"> {item.quote.text}\n      {text}"
    if item.deleted == "moderated":
        by = item.deleted_by.name if item.deleted_by else "an admin"
        text += f" [moderated by {by}]"
    elif item.deleted:
        text += " [marked deleted]"
    if item.edited:
        text += " [edited]"
    if item.direction == "snd" and item.status.startswith("rcvd"):
        text += " ✓✓" if item.status == "rcvd" else " ✓✗"
    if item.reactions:
        text += " " + " ".join(f"{r.emoji}{r.count}" for r in item.reactions)
    return text


def describe_item(item: ChatItem) -> str:
    text = item_text(item)
    if item.group is not None:
        who = "you" if item.direction == "snd" else (item.author.name if item.author else "?")
        return f"#{item.group.name} {who}> {text}"
    name = item.contact.name if item.contact else "?"
    return f"{name}> {text}" if item.direction == "rcv" else f"@{name} {text}"
