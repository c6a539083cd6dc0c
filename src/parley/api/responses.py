"""simplex-chat shaped JSON from parley's views and events (no I/O).

The shapes follow the types of the official ``simplex-chat`` npm client (0.2.x,
``response.d.ts``): the same ``type`` tags and field names. parley fills in the fields it
has; internal simplex-chat fields it has no equivalent for (profile ids, agent user ids,
connection ids, creation times of contacts and groups) are left out rather than invented.
docs/bot-api.md lists what each object carries.

Builders take the views of `parley.chat.events` and whatever else they need (the group's
members, for ``membership`` and ``hostMember``) as arguments: the server fetches them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, NotRequired, TypedDict

import msgspec

from parley.chat import events as cev

JsonObject = dict[str, Any]


# ---------------------------------------------------------------- objects


class ProfileJson(TypedDict):
    displayName: str
    fullName: str
    localAlias: NotRequired[str]


class GroupProfileJson(TypedDict):
    displayName: str
    fullName: str


class UserJson(TypedDict):
    userId: int
    localDisplayName: str
    profile: ProfileJson
    activeUser: bool


class ConnJson(TypedDict):
    connStatus: str


class ContactJson(TypedDict):
    contactId: int
    localDisplayName: str
    profile: ProfileJson
    contactStatus: str
    activeConn: ConnJson


class MemberJson(TypedDict):
    groupMemberId: int
    groupId: int
    memberId: str
    memberRole: str
    memberCategory: str
    memberStatus: str
    localDisplayName: str
    memberProfile: ProfileJson
    memberContactId: NotRequired[int]
    activeConn: NotRequired[ConnJson]


class GroupInfoJson(TypedDict):
    groupId: int
    localDisplayName: str
    groupProfile: GroupProfileJson
    membership: NotRequired[MemberJson]


class DirectInfoJson(TypedDict):
    type: Literal["direct"]
    contact: ContactJson


class GroupChatInfoJson(TypedDict):
    type: Literal["group"]
    groupInfo: GroupInfoJson


ChatInfoJson = DirectInfoJson | GroupChatInfoJson


class ChatDirJson(TypedDict):
    type: str  # directSnd, directRcv, groupSnd, groupRcv
    groupMember: NotRequired[MemberJson]


class ItemStatusJson(TypedDict):
    type: str  # sndNew, sndSent, sndRcvd, sndError, rcvNew
    agentError: NotRequired[JsonObject]
    msgRcptStatus: NotRequired[str]  # sndRcvd: ok or badMsgHash
    sndProgress: NotRequired[str]


class ItemMetaJson(TypedDict):
    itemId: int
    itemTs: str
    itemText: str
    itemStatus: ItemStatusJson
    itemSharedMsgId: NotRequired[str]
    itemDeleted: bool | JsonObject
    itemEdited: bool
    editable: bool
    createdAt: str
    updatedAt: str


class MsgContentJson(TypedDict):
    type: Literal["text"]
    text: str


class ItemContentJson(TypedDict):
    type: str  # sndMsgContent, rcvMsgContent, rcvIntegrityError, rcvConnEvent
    msgContent: NotRequired[MsgContentJson]
    msgError: NotRequired[JsonObject]
    rcvConnEvent: NotRequired[JsonObject]


class ChatItemJson(TypedDict):
    chatDir: ChatDirJson
    meta: ItemMetaJson
    content: ItemContentJson
    quotedItem: NotRequired[JsonObject]
    reactions: list[JsonObject]


class AChatItemJson(TypedDict):
    chatInfo: ChatInfoJson
    chatItem: ChatItemJson


class ChatStatsJson(TypedDict):
    unreadCount: int
    minUnreadItemId: int
    unreadChat: bool


class ChatJson(TypedDict):
    chatInfo: ChatInfoJson
    chatItems: list[ChatItemJson]
    chatStats: ChatStatsJson


class GroupJson(TypedDict):
    groupInfo: GroupInfoJson
    members: list[MemberJson]


# ---------------------------------------------------------------- object builders


def timestamp(t: float) -> str:
    """Seconds since the epoch as simplex-chat writes times: ISO 8601 in UTC with a Z."""
    text = datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")
    return text.removesuffix("+00:00") + "Z"


def profile_json(display_name: str, full_name: str) -> ProfileJson:
    """A contact's, member's or the user's profile (parley keeps no local aliases)."""
    return {"displayName": display_name, "fullName": full_name, "localAlias": ""}


def user_json(user: cev.User) -> UserJson:
    return {
        "userId": user.user_id,
        "localDisplayName": user.display_name,
        "profile": profile_json(user.display_name, user.full_name),
        "activeUser": True,
    }


def contact_json(contact: cev.Contact) -> ContactJson:
    return {
        "contactId": contact.contact_id,
        "localDisplayName": contact.name,
        "profile": profile_json(contact.display_name, contact.full_name),
        "contactStatus": "deleted" if contact.status == "deleted" else "active",
        # a contact exists once the profiles are exchanged; "ready" once it is connected
        "activeConn": {"connStatus": "ready" if contact.status == "ready" else "accepted"},
    }


def member_json(member: cev.Member) -> MemberJson:
    out: MemberJson = {
        "groupMemberId": member.member_row,
        "groupId": member.group_id,
        "memberId": member.member_id,
        "memberRole": member.role,
        "memberCategory": member.category,
        "memberStatus": member.status,
        "localDisplayName": member.name,
        "memberProfile": profile_json(member.name, member.full_name),
    }
    if member.contact_id is not None:
        out["memberContactId"] = member.contact_id
    if member.connection is not None:
        out["activeConn"] = {"connStatus": member.connection}
    return out


def membership(members: Sequence[cev.Member]) -> cev.Member | None:
    """The user's own member record in a group."""
    return next((m for m in members if m.category == "user"), None)


def host_member(members: Sequence[cev.Member]) -> cev.Member | None:
    return next((m for m in members if m.category == "host"), None)


def group_info_json(group: cev.Group, members: Sequence[cev.Member] = ()) -> GroupInfoJson:
    out: GroupInfoJson = {
        "groupId": group.group_id,
        "localDisplayName": group.name,
        "groupProfile": {"displayName": group.display_name, "fullName": group.full_name},
    }
    me = membership(members)
    if me is not None:
        out["membership"] = member_json(me)
    return out


def direct_info(contact: cev.Contact) -> DirectInfoJson:
    return {"type": "direct", "contact": contact_json(contact)}


def group_chat_info(group: cev.Group, members: Sequence[cev.Member] = ()) -> GroupChatInfoJson:
    return {"type": "group", "groupInfo": group_info_json(group, members)}


_ITEM_STATUS = {
    "sending": "sndNew",
    "sent": "sndSent",
    "rcvd": "sndRcvd",
    "rcvd-bad-hash": "sndRcvd",
    "error": "sndError",
    "received": "rcvNew",
}


def _msg_error(text: str) -> JsonObject:
    """simplex-chat's MsgErrorType for an integrity item's text."""
    if "skipped" in text:
        n = int(text.split()[0]) if text.split()[0].isdigit() else 1
        return {"type": "msgSkipped", "fromMsgId": 0, "toMsgId": n - 1}
    if "hash" in text:
        return {"type": "msgBadHash"}
    if "ID" in text:
        return {"type": "msgBadId", "msgId": 0}
    return {"type": "msgDuplicate"}


def _item_content(item: cev.ChatItem, snd: bool) -> ItemContentJson:
    if item.content_type == "rcvIntegrityError":
        return {"type": "rcvIntegrityError", "msgError": _msg_error(item.text)}
    if item.content_type == "rcvConnEvent":
        return {
            "type": "rcvConnEvent",
            "rcvConnEvent": {"type": "ratchetSync", "syncStatus": "ok"},
        }
    return {
        "type": "sndMsgContent" if snd else "rcvMsgContent",
        "msgContent": {"type": "text", "text": item.text},
    }


def _deleted(item: cev.ChatItem) -> bool | JsonObject:
    if item.deleted is None:
        return False
    ts = timestamp(item.created_at)
    if item.deleted == "moderated" and item.deleted_by is not None:
        return {"type": "moderated", "deletedTs": ts, "byGroupMember": member_json(item.deleted_by)}
    return {"type": "deleted", "deletedTs": ts}


def chat_item_json(item: cev.ChatItem) -> ChatItemJson:
    snd = item.direction == "snd"
    chat_dir: ChatDirJson
    if item.group is not None:
        chat_dir = {"type": "groupSnd" if snd else "groupRcv"}
        if not snd and item.author is not None:
            chat_dir["groupMember"] = member_json(item.author)
    else:
        chat_dir = {"type": "directSnd" if snd else "directRcv"}
    status: ItemStatusJson = {"type": _ITEM_STATUS.get(item.status, "sndNew" if snd else "rcvNew")}
    if status["type"] == "sndError":
        status["agentError"] = {"type": "INTERNAL", "internalErr": "delivery failed"}
    if status["type"] == "sndRcvd":
        status["msgRcptStatus"] = "ok" if item.status == "rcvd" else "badMsgHash"
        status["sndProgress"] = "complete"
    ts = timestamp(item.created_at)
    meta: ItemMetaJson = {
        "itemId": item.item_id,
        "itemTs": ts,
        "itemText": item.text,
        "itemStatus": status,
        "itemDeleted": _deleted(item),
        "itemEdited": item.edited,
        "editable": snd and item.content_type == "text" and item.deleted is None,
        "createdAt": ts,
        "updatedAt": ts,
    }
    if item.shared_msg_id is not None:
        meta["itemSharedMsgId"] = item.shared_msg_id
    out: ChatItemJson = {
        "chatDir": chat_dir,
        "meta": meta,
        "content": _item_content(item, snd),
        "reactions": [
            {
                "reaction": {"type": "emoji", "emoji": x.emoji},
                "userReacted": x.by_user,
                "totalReacted": x.count,
            }
            for x in item.reactions
        ],
    }
    if item.quote is not None:
        q = item.quote
        quoted: JsonObject = {
            "chatDir": {"type": "directSnd" if q.sent else "directRcv"}
            if item.group is None
            else {"type": "groupSnd" if q.sent else "groupRcv"},
            "sharedMsgId": q.msg_id,
            "sentAt": ts,
            "content": {"type": "text", "text": q.text},
            "formattedText": None,
        }
        if q.item_id is not None:
            quoted["itemId"] = q.item_id
        out["quotedItem"] = quoted
    return out


def item_chat_info(item: cev.ChatItem, members: Sequence[cev.Member] = ()) -> ChatInfoJson | None:
    if item.group is not None:
        return group_chat_info(item.group, members)
    if item.contact is not None:
        return direct_info(item.contact)
    return None


def a_chat_item(chat_info: ChatInfoJson, item: cev.ChatItem) -> AChatItemJson:
    return {"chatInfo": chat_info, "chatItem": chat_item_json(item)}


_DELIVERY = {
    "sending": "new",
    "sent": "sent",
    "rcvd": "rcvd",
    "rcvd-bad-hash": "rcvd",
    "error": "error",
}


def group_snd_status(delivery: cev.MemberDelivery) -> JsonObject:
    """simplex-chat's GroupSndStatus of one member's delivery."""
    kind = _DELIVERY.get(delivery.status, "new")
    out: JsonObject = {"type": kind}
    if kind == "rcvd":
        out["msgRcptStatus"] = "ok" if delivery.status == "rcvd" else "badMsgHash"
    if kind == "error":
        out["agentError"] = {"type": "other", "sndError": delivery.reason or "failed"}
    return out


def item_info_json(
    item: cev.ChatItem,
    versions: Sequence[tuple[int, str, float]],
    deliveries: Sequence[cev.MemberDelivery] | None,
) -> JsonObject:
    """ChatItemInfo: the item's versions (the original first; the item itself when it was
    never edited) and each member's delivery of a sent group item (else null)."""
    history = list(versions) or [(0, item.text, item.created_at)]
    return {
        "itemVersions": [
            {
                "chatItemVersionId": edit,
                "msgContent": {"type": "text", "text": text},
                "itemVersionTs": timestamp(at),
                "createdAt": timestamp(at),
            }
            for edit, text, at in history
        ],
        "memberDeliveryStatuses": None
        if deliveries is None
        else [
            {
                "groupMemberId": d.member.member_row,
                "memberDeliveryStatus": group_snd_status(d),
                "sentViaProxy": False,
            }
            for d in deliveries
        ],
    }


def chat_json(chat_info: ChatInfoJson, items: Sequence[cev.ChatItem]) -> ChatJson:
    return {
        "chatInfo": chat_info,
        "chatItems": [chat_item_json(i) for i in items],
        # parley does not track what was read
        "chatStats": {"unreadCount": 0, "minUnreadItemId": 0, "unreadChat": False},
    }


def group_json(group: cev.Group, members: Sequence[cev.Member]) -> GroupJson:
    """simplex-chat's Group: the group info (with the user's membership) and the other
    members."""
    return {
        "groupInfo": group_info_json(group, members),
        "members": [member_json(m) for m in members if m.category != "user"],
    }


def conn_link(link: str) -> JsonObject:
    """The current API's CreatedConnLink: parley links have one form (no short link)."""
    return {"connFullLink": link}


def address_json(address: cev.AddressView) -> JsonObject:
    """The address as both generations read it: the npm client 0.2.x's UserContactLink
    (``connReqContact``, ``autoAccept``) and the current API's (``connLinkContact``,
    ``addressSettings``) in one object."""
    auto: JsonObject | None = None
    settings: JsonObject = {"businessAddress": False}
    if address.auto_accept:
        auto = {"acceptIncognito": False}
        settings["autoAccept"] = {"acceptIncognito": False}
        if address.welcome:
            auto["autoReply"] = text_content(address.welcome)
    if address.welcome:
        settings["autoReply"] = text_content(address.welcome)
    out: JsonObject = {
        "connReqContact": address.link,
        "userContactLinkId": 1,
        "connLinkContact": conn_link(address.link),
        "shortLinkDataSet": False,
        "shortLinkLargeDataSet": False,
        "addressSettings": settings,
    }
    if auto is not None:
        out["autoAccept"] = auto
    return out


def text_content(text: str) -> JsonObject:
    return {"type": "text", "text": text}


def contact_request_json(req: cev.ContactRequestView) -> JsonObject:
    ts = timestamp(req.created_at)
    out: JsonObject = {
        "contactRequestId": req.request_id,
        "localDisplayName": req.name,
        "profile": profile_json(req.display_name, req.full_name),
        "createdAt": ts,
        "updatedAt": ts,
        "pqSupport": False,
    }
    if req.contact_id is not None:
        out["contactId_"] = req.contact_id
    return out


def group_link_fields(link: cev.GroupLinkView) -> JsonObject:
    """A group link's fields in both generations: the 0.2.x-era ``connReqContact`` and
    ``memberRole`` beside the current API's ``groupLink`` object."""
    return {
        "connReqContact": link.link,
        "memberRole": link.role,
        "groupLink": {
            "userContactLinkId": link.group.group_id,
            "connLinkContact": conn_link(link.link),
            "shortLinkDataSet": False,
            "shortLinkLargeDataSet": False,
            "groupLinkId": f"group-{link.group.group_id}",
            "acceptMemberRole": link.role,
        },
    }


def user_profile_json(user: cev.User) -> JsonObject:
    return {"displayName": user.display_name, "fullName": user.full_name}


# ---------------------------------------------------------------- responses and errors


def response(kind: str, user: cev.User | None = None, **fields: Any) -> JsonObject:
    """``{"type": kind, "user": ..., **fields}``: the "resp" of a reply or an event."""
    out: JsonObject = {"type": kind}
    if user is not None:
        out["user"] = user_json(user)
    out.update(fields)
    return out


def command_error(message: str) -> JsonObject:
    """chatCmdError with simplex-chat's generic ``commandError``."""
    return {
        "type": "chatCmdError",
        "chatError": {"type": "error", "errorType": {"type": "commandError", "message": message}},
    }


def no_active_user() -> JsonObject:
    return {
        "type": "chatCmdError",
        "chatError": {"type": "error", "errorType": {"type": "noActiveUser"}},
    }


def store_error(kind: str, message: str, **fields: Any) -> JsonObject:
    """chatCmdError with an ``errorStore`` (something the command names does not exist)."""
    return {
        "type": "chatCmdError",
        "chatError": {
            "type": "errorStore",
            "storeError": {"type": kind, **fields, "message": message},
        },
    }


def agent_error(reason: str) -> JsonObject:
    """The chatError of a failure that happened later, in the agent."""
    return {"type": "errorAgent", "agentError": {"type": "INTERNAL", "internalErr": reason}}


def envelope(resp: JsonObject, corr_id: str | int | None = None) -> bytes:
    """A frame for the client: ``{"corrId": ..., "resp": ...}`` (no corrId for events)."""
    frame: JsonObject = {"resp": resp} if corr_id is None else {"corrId": corr_id, "resp": resp}
    return msgspec.json.encode(frame)


# ---------------------------------------------------------------- events


def event_response(
    user: cev.User | None,
    event: cev.ChatEvent,
    members: Sequence[cev.Member] = (),
    item: cev.ChatItem | None = None,
    *,
    current: bool = False,
) -> JsonObject | None:
    """The simplex-chat event for a chat event, or None if it has none.

    `members` are the current members of the event's group (for ``membership`` and
    ``hostMember``); `item` is the chat item a ChatItemStatus is about, if it was found.
    Events about the user's own actions (deleting a contact or a group, removing a member,
    creating an address or a group link, changing a role or the profile) have none: the
    command's reply reports them, as in simplex-chat. With `current`, events whose name
    changed since the npm client 0.2.x get the current API's name
    (``chatItemsStatusesUpdated``).
    """
    match event:
        case cev.ReceivedContactRequest(req):
            return response(
                "receivedContactRequest", user, contactRequest=contact_request_json(req)
            )
        case cev.AcceptingContactRequest(contact):
            return response("acceptingContactRequest", user, contact=contact_json(contact))
        case cev.ContactUpdated(before, after):
            return response(
                "contactUpdated",
                user,
                fromContact=contact_json(before),
                toContact=contact_json(after),
            )
        case cev.GroupMemberUpdated(group, before, after):
            return _group_event(
                "groupMemberUpdated",
                user,
                group,
                members,
                fromMember=member_json(before),
                toMember=member_json(after),
            )
        case cev.GroupUpdated(before, after, by) if by is not None:
            return response(
                "groupUpdated",
                user,
                fromGroup=group_info_json(before, members),
                toGroup=group_info_json(after, members),
                member_=member_json(by),
            )
        case cev.MemberRoleUpdated(group, member, old, new, by) if by is not None:
            return _group_event(
                "memberRole",
                user,
                group,
                members,
                byMember=member_json(by),
                member=member_json(member),
                fromRole=old,
                toRole=new,
            )
        case cev.ContactConnected(contact):
            return response("contactConnected", user, contact=contact_json(contact))
        case cev.ReceivedGroupInvitation(group, contact, role):
            return _group_event(
                "receivedGroupInvitation",
                user,
                group,
                members,
                contact=contact_json(contact),
                memberRole=role,
            )
        case cev.UserJoinedGroup(group):
            return _with_host(_group_event("userJoinedGroup", user, group, members), members)
        case cev.JoinedGroupMember(group, member):
            return _member_event("joinedGroupMember", user, group, members, member)
        case cev.MemberAnnounced(group, member):
            out = _member_event("joinedGroupMemberConnecting", user, group, members, member)
            return _with_host(out, members)
        case cev.ConnectedToGroupMember(group, member):
            return _member_event("connectedToGroupMember", user, group, members, member)
        case cev.MemberFailed(group, member, reason):
            return _member_event(
                "memberSubError", user, group, members, member, chatError=agent_error(reason)
            )
        case cev.MemberLeft(group, member):
            return _member_event("leftMember", user, group, members, member)
        case cev.MemberRemoved(group, member, by) if by is not None:
            return _group_event(
                "deletedMember",
                user,
                group,
                members,
                byMember=member_json(by),
                deletedMember=member_json(member),
            )
        case cev.UserRemoved(group, by):
            out = _group_event("deletedMemberUser", user, group, members)
            remover = by if by is not None else host_member(members)
            if remover is not None:
                out["member"] = member_json(remover)
            return out
        case cev.GroupDeleted(group, by) if by is not None:
            return _member_event("groupDeleted", user, group, members, by)
        case cev.NewChatItem(new):
            info = item_chat_info(new, members)
            if info is None:
                return None
            return response("newChatItems", user, chatItems=[a_chat_item(info, new)])
        case cev.ChatItemStatus() if item is not None:
            info = item_chat_info(item, members)
            if info is None:
                return None
            if current:
                return response(
                    "chatItemsStatusesUpdated", user, chatItems=[a_chat_item(info, item)]
                )
            return response("chatItemStatusUpdated", user, chatItem=a_chat_item(info, item))
        case cev.ChatItemUpdated(updated):
            info = item_chat_info(updated, members)
            if info is None:
                return None
            return response("chatItemUpdated", user, chatItem=a_chat_item(info, updated))
        case cev.ChatItemDeleted(deleted, removed, by_user, _):
            info = item_chat_info(deleted, members)
            if info is None:
                return None
            to_item = None if removed else a_chat_item(info, deleted)
            return item_deleted_response(
                user, a_chat_item(info, deleted), to_item, by_user, current=current
            )
        case cev.ChatItemReaction(reacted, emoji, added, _):
            info = item_chat_info(reacted, members)
            if info is None:
                return None
            return reaction_response(user, info, reacted, emoji, added)
        case cev.RatchetSync(state, _, contact, group, member):
            progress = {"ratchetSyncStatus": state, "connectionStats": connection_stats(state)}
            if contact is not None:
                return response(
                    "contactRatchetSync",
                    user,
                    contact=contact_json(contact),
                    ratchetSyncProgress=progress,
                )
            if group is not None and member is not None:
                return _member_event(
                    "groupMemberRatchetSync",
                    user,
                    group,
                    members,
                    member,
                    ratchetSyncProgress=progress,
                )
            return None
        case cev.ConnectionFailed(connection_id, reason):
            return response(
                "chatError", user, chatError=agent_error(f"connection {connection_id}: {reason}")
            )
        case cev.RelayStatus(relay, up, _):
            return {
                "type": "hostConnected" if up else "hostDisconnected",
                "protocol": "smp",
                "transportHost": relay,
            }
    return None


def _member_event(
    kind: str,
    user: cev.User | None,
    group: cev.Group,
    members: Sequence[cev.Member],
    member: cev.Member,
    **fields: Any,
) -> JsonObject:
    """An event about one member of a group: its groupInfo and member, and `fields`."""
    return _group_event(kind, user, group, members, member=member_json(member), **fields)


def _group_event(
    kind: str, user: cev.User | None, group: cev.Group, members: Sequence[cev.Member], **fields: Any
) -> JsonObject:
    """An event about a group: its groupInfo, and `fields`."""
    return response(kind, user, groupInfo=group_info_json(group, members), **fields)


def _with_host(out: JsonObject, members: Sequence[cev.Member]) -> JsonObject:
    """`out` with the group's host as ``hostMember``, if it is known."""
    host = host_member(members)
    if host is not None:
        out["hostMember"] = member_json(host)
    return out


def item_deleted_response(
    user: cev.User | None,
    deleted: AChatItemJson,
    to_item: AChatItemJson | None,
    by_user: bool,
    *,
    current: bool,
) -> JsonObject:
    """``chatItemsDeleted`` (current API) or ``chatItemDeleted`` (npm client 0.2.x)."""
    if current:
        return response(
            "chatItemsDeleted",
            user,
            chatItemDeletions=[{"deletedChatItem": deleted, "toChatItem": to_item}],
            byUser=by_user,
            timed=False,
        )
    return response(
        "chatItemDeleted", user, deletedChatItem=deleted, toChatItem=to_item, byUser=by_user
    )


def connection_stats(ratchet_state: str) -> JsonObject:
    """The ConnectionStats parley has to give: the ratchet re-synchronisation state."""
    return {
        "connAgentVersion": 1,
        "rcvQueuesInfo": [],
        "sndQueuesInfo": [],
        "ratchetSyncState": ratchet_state,
        "ratchetSyncSupported": True,
    }


def reaction_response(
    user: cev.User | None, info: ChatInfoJson, item: cev.ChatItem, emoji: str, added: bool
) -> JsonObject:
    """``chatItemReaction`` with its ACIReaction."""
    chat_item = chat_item_json(item)
    return response(
        "chatItemReaction",
        user,
        added=added,
        reaction={
            "chatInfo": info,
            "chatReaction": {
                "chatDir": chat_item["chatDir"],
                "chatItem": chat_item,
                "sentAt": timestamp(item.created_at),
                "reaction": {"type": "emoji", "emoji": emoji},
            },
        },
    )


# the events whose responses show a group with its members
_ITEM_EVENTS = (cev.NewChatItem, cev.ChatItemUpdated, cev.ChatItemDeleted, cev.ChatItemReaction)
_GROUP_EVENTS = (
    cev.ReceivedGroupInvitation,
    cev.UserJoinedGroup,
    cev.JoinedGroupMember,
    cev.MemberAnnounced,
    cev.ConnectedToGroupMember,
    cev.MemberFailed,
    cev.MemberLeft,
    cev.MemberRemoved,
    cev.UserRemoved,
    cev.GroupDeleted,
    cev.MemberRoleUpdated,
    cev.GroupMemberUpdated,
)


def event_group(event: cev.ChatEvent) -> cev.Group | None:
    """The group whose members `event_response` needs for this event, if any."""
    if isinstance(event, _ITEM_EVENTS):
        return event.item.group
    if isinstance(event, _GROUP_EVENTS):
        return event.group
    if isinstance(event, cev.GroupUpdated):
        return event.after
    return event.group if isinstance(event, cev.RatchetSync) else None


def pending_connection(connection_id: int, *, via_address: bool) -> JsonObject:
    """The current API's PendingContactConnection, with what parley knows of it."""
    now = timestamp(time.time())
    return {
        "pccConnId": connection_id,
        "pccAgentConnId": str(connection_id),
        "pccConnStatus": "new",
        "viaContactUri": via_address,
        "incognito": False,
        "localAlias": "",
        "createdAt": now,
        "updatedAt": now,
    }


def invitation_response(user: cev.User | None, connection_id: int, link: str) -> JsonObject:
    """The ``invitation`` reply (to /_connect) and event (a link that came later)."""
    return response(
        "invitation",
        user,
        connReqInvitation=link,
        connLinkInvitation=conn_link(link),
        connection=pending_connection(connection_id, via_address=False),
    )
