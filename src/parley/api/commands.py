"""Parse the bot API's requests: the JSON envelope and the command strings in it (no I/O).

A client sends ``{"corrId": "7", "cmd": "/_send @3 json [...]"}``. `parse_request` checks
the envelope and `parse_command` turns the command string into one of the typed commands
below, an `Unsupported` command (one simplex-chat has and parley does not: the server
answers it with an error that says why), or a `ParseError`.

The command strings are those of both generations of simplex-chat's bot API: the
WebSocket API as the official ``simplex-chat`` npm client (0.2.x) writes them, and the
current API of simplex-chat's ``bots/api/`` (as the Python library ``simplex-chat`` 7.x
writes them: user ids in ``/_address 1``, ``/_contacts 1``, ``/_get chats 1 count=N {...}``,
member id lists in ``/_remove #1 2,3``, ...). Newer optional arguments are accepted where
they ask for nothing parley lacks, and refused when they do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, dataclass_transform

ChatType = Literal["direct", "group"]
Role = Literal["owner", "admin", "member", "observer"]

ROLES: tuple[Role, ...] = ("owner", "admin", "member", "observer")
MAX_ID = 2**63 - 1
MAX_COUNT = 10_000  # the most chat items one /_get chat returns

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def _value(cls: type[T]) -> type[T]:
    """What the parser returns: an immutable value (a frozen dataclass with slots)."""
    return dataclass(frozen=True, slots=True)(cls)


# ---------------------------------------------------------------- the envelope


@_value
class Request:
    corr_id: str | int | None
    cmd: str


@_value
class RequestError:
    """The frame is not a usable request; `corr_id` is echoed if it could be read."""

    corr_id: str | int | None
    message: str


def parse_request(frame: str | bytes) -> Request | RequestError:
    """Check the envelope ``{"corrId": ..., "cmd": "..."}``."""
    if isinstance(frame, bytes):
        return RequestError(None, "binary frames are not accepted: send the request as text")
    try:
        data: Any = json.loads(frame)
    except (ValueError, RecursionError) as e:
        return RequestError(None, f"the request is not valid JSON: {e}")
    if not isinstance(data, dict):
        return RequestError(None, 'the request must be a JSON object {"corrId": ..., "cmd": ...}')
    corr_id = data.get("corrId")
    if corr_id is not None and (isinstance(corr_id, bool) or not isinstance(corr_id, str | int)):
        return RequestError(None, "corrId must be a string")
    cmd = data.get("cmd")
    if cmd is None:
        return RequestError(corr_id, 'the request has no "cmd"')
    if not isinstance(cmd, str):
        return RequestError(corr_id, '"cmd" must be a string')
    return Request(corr_id, cmd)


# ---------------------------------------------------------------- commands


@_value
class ChatRef:
    """``@<contactId>`` or ``#<groupId>``."""

    type: ChatType
    chat_id: int


@_value
class NamedChatRef:
    """``@name`` or ``#name`` (the CLI's text forms)."""

    type: ChatType
    name: str


@_value
class _Names:
    display_name: str
    full_name: str


# the user and the chat


@_value
class ShowActiveUser:
    pass


@_value
class CreateActiveUser(_Names):
    pass


@_value
class UpdateProfile:
    """``/_profile <userId> {Profile}`` (parley keeps displayName and fullName), or
    ``/p NAME [FULL NAME]`` (the user id None)."""

    user_id: int | None
    display_name: str
    full_name: str


@_value
class SetUserReceipts:
    """``/_set receipts contacts|groups <userId> on|off [clear_overrides=on|off]``."""

    kind: str
    user_id: int
    on: bool


@_value
class StartChat:
    pass


@_value
class StopChat:
    """``/_stop``: refused over WebSocket; the Python library backend answers it."""


# chats and their items


@_value
class GetChats:
    count: int | None = None  # the current API's count=N: the N most recent chats


@_value
class _OfChat:
    chat: ChatRef


@_value
class GetChat(_OfChat):
    count: int
    before: int | None = None
    after: int | None = None
    search: str | None = None


@_value
class DeleteChat(_OfChat):
    pass


@_value
class ChatRead(_OfChat):
    pass


@_value
class SetChatSettings(_OfChat):
    """``/_settings @3 {"sendRcpts": true, ...}``: parley keeps sendRcpts (null: default)."""

    send_receipts: bool | None


@_value
class SyncRatchet(_OfChat):
    """``/_sync @<contactId> [force=on]`` or ``/_sync #<groupId> <groupMemberId> [force=on]``."""

    member_id: int | None
    force: bool


@_value
class SendMessages:
    chat: ChatRef | NamedChatRef
    texts: tuple[str, ...]
    quotes: tuple[int | None, ...] = ()  # quotedItemId of each message (a reply), if any


@_value
class DeleteItems(_OfChat):
    """``/_delete item @3 5[,6] broadcast|internal``."""

    item_ids: tuple[int, ...]
    broadcast: bool


@_value
class _OfItem(_OfChat):
    item_id: int


@_value
class UpdateItem(_OfItem):
    """``/_update item @3 5 [live=off] json {"msgContent": {...}}`` (or the bare content)."""

    text: str


@_value
class GetItemInfo(_OfItem):
    """``/_get item info @3 5``: an item's versions and (a sent group item) its delivery
    to each member."""


@_value
class SetReaction(_OfItem):
    """``/_reaction @3 5 on|off json {"type": "emoji", "emoji": "👍"}``."""

    add: bool
    emoji: str


# contacts and the address


@_value
class AddContact:
    """``/connect`` without a link: make a one-time invitation."""


@_value
class Connect:
    link: str


@_value
class ConnectPlan:
    """``/_connect plan <userId> <link>``: what kind of link it is, and if it is known."""

    user_id: int
    link: str


@_value
class ListContacts:
    user_id: int


@_value
class ContactInfo:
    contact_id: int


@_value
class SetContactPrefs:
    """``/_set prefs @3 {"fullDelete": {"allow": "yes"}}``: parley keeps fullDelete as the
    contact's full deletion setting ("yes"/"always": on, "no": off, absent: default)."""

    contact_id: int
    full_delete: bool | None


@_value
class _OfAddress:
    user_id: int | None = None


@_value
class ShowMyAddress(_OfAddress):
    """``/show_address``, ``/_show_address <userId>``."""


@_value
class CreateMyAddress(_OfAddress):
    """``/address``, ``/_address <userId>``."""


@_value
class DeleteMyAddress(_OfAddress):
    """``/delete_address``, ``/_delete_address <userId>``."""


@_value
class SetAutoAccept:
    """``/auto_accept on|off [json {msgContent}]`` (0.2.x) and ``/_address_settings <userId>
    {AddressSettings}`` (current): accept contact requests automatically, with a welcome."""

    on: bool
    welcome: str | None = None
    user_id: int | None = None
    current: bool = False  # the current API's /_address_settings


@_value
class SetProfileAddress:
    """``/profile_address on|off``, ``/_profile_address <userId> on|off``."""

    on: bool
    user_id: int | None = None


@_value
class _OfRequest:
    request_id: int


@_value
class AcceptContact(_OfRequest):
    pass


@_value
class RejectContact(_OfRequest):
    pass


# groups


@_value
class NewGroup(_Names):
    pass


@_value
class ListGroups:
    user_id: int
    contact_id: int | None = None
    search: str | None = None


@_value
class _OfGroup:
    group_id: int


@_value
class AddMember(_OfGroup):
    contact_id: int
    role: Role


@_value
class JoinGroup(_OfGroup):
    pass


@_value
class ListMembers(_OfGroup):
    pass


@_value
class LeaveGroup(_OfGroup):
    pass


@_value
class RemoveMember(_OfGroup):
    member_id: int  # groupMemberId
    # the current API's /_remove #1 2,3 (any number of members; userDeletedMembers)
    more: tuple[int, ...] = ()
    listed: bool = False  # given as a list (with a comma): the current API's reply


@_value
class GroupMemberInfo(_OfGroup):
    member_id: int


@_value
class SetMembersRole(_OfGroup):
    member_ids: tuple[int, ...]
    role: Role


@_value
class DeleteMemberItems(_OfGroup):
    """``/_delete member item #1 5[,6]``: moderation by an admin or owner."""

    item_ids: tuple[int, ...]


@_value
class UpdateGroupProfile(_OfGroup):
    """``/_group_profile #<groupId> {GroupProfile}``: displayName and fullName."""

    display_name: str
    full_name: str


@_value
class CreateGroupLink(_OfGroup):
    role: Role


@_value
class SetGroupLinkRole(_OfGroup):
    role: Role


@_value
class DeleteGroupLink(_OfGroup):
    pass


@_value
class GetGroupLink(_OfGroup):
    pass


# what cannot be done


@_value
class Unsupported:
    """A simplex-chat command parley does not do; `reason` says why or what to use."""

    command: str
    reason: str


@_value
class ParseError:
    message: str


Command = (
    ShowActiveUser
    | CreateActiveUser
    | StartChat
    | GetChats
    | GetChat
    | SendMessages
    | UpdateItem
    | DeleteItems
    | DeleteMemberItems
    | GetItemInfo
    | SetReaction
    | SetChatSettings
    | SetContactPrefs
    | SyncRatchet
    | SetUserReceipts
    | AddContact
    | Connect
    | NewGroup
    | AddMember
    | JoinGroup
    | ListMembers
    | LeaveGroup
    | RemoveMember
    | DeleteChat
    | ContactInfo
    | GroupMemberInfo
    | ChatRead
    | ShowMyAddress
    | CreateMyAddress
    | DeleteMyAddress
    | SetAutoAccept
    | SetProfileAddress
    | AcceptContact
    | RejectContact
    | UpdateProfile
    | UpdateGroupProfile
    | CreateGroupLink
    | SetGroupLinkRole
    | DeleteGroupLink
    | GetGroupLink
    | ListContacts
    | ListGroups
    | SetMembersRole
    | ConnectPlan
    | StopChat
    | Unsupported
)


class _Bad(Exception):
    """Raised inside the parser; becomes a ParseError."""


_NO_FILES = "parley does not transfer files"
_NO_USERS = "a parley chat has one user (see /u)"

# simplex-chat commands parley knows but cannot do: their first word(s) and the reason
_UNSUPPORTED: dict[str, str] = {
    "/_accept": "only /_accept <contactRequestId> is supported (members join groups "
    "without approval)",
    "/simplex": "parley cannot connect to the SimpleX team: it is a separate network",
    "/users": _NO_USERS,
    "/_hide": _NO_USERS,
    "/_unhide": _NO_USERS,
    "/_mute": _NO_USERS,
    "/_unmute": _NO_USERS,
    "/_set": "only /_set link role #<groupId> <role>, /_set receipts and /_set prefs "
    "@<contactId> are supported (aliases and custom data are not)",
    "/_update": "only /_update item <chat> <itemId> json {...} is supported",
    "/_clear": "clearing a chat is not supported",
    "/_create": "only /_create user {...} and /_create link #<groupId> [role] are supported",
    "/_delete": "only /_delete @<contactId>, /_delete #<groupId>, /_delete link #<groupId>, "
    "/_delete item, /_delete member item and /_delete_address are supported: deleting "
    "users is not",
    "/_get": "only /_get chats, /_get chat, /_get item info and /_get link are supported",
    "/_member": "only /_member role #<groupId> <groupMemberIds> <role> is supported",
    "/_block": "blocking members is not supported",
    "/_public": "public groups (channels with chat relays) are not supported",
    "/_relay": "chat relays are not supported",
    "/_invite": "member contacts are not supported",
    "/_user": _NO_USERS,
    "/_servers": "relays are set when parley starts (parley chat --relay ...)",
    "/_verify": "security code verification is not supported",
    "/freceive": _NO_FILES,
    "/fcancel": _NO_FILES,
    "/fstatus": _NO_FILES,
    "/_temp_folder": _NO_FILES,
    "/_files_folder": _NO_FILES,
    "/_db": "database export and import are not supported over the API",
    "/_parse": "markdown parsing is not supported",
    "/incognito": "incognito profiles are not supported",
}


def parse_command(text: str) -> Command | ParseError:
    """The typed command for a command string, or why it cannot be read."""
    try:
        return _parse(text.strip())
    except _Bad as e:
        return ParseError(str(e))


def _parse(text: str) -> Command:
    if not text:
        raise _Bad("empty command")
    if text[0] in "@#":
        return _send_by_name(text)
    head, _, rest = text.partition(" ")
    rest = rest.strip()
    word = head.lower()
    match word:
        case "/u" | "/user":
            _no_args(word, rest)
            return ShowActiveUser()
        case "/_create" if rest.split(" ", 1)[0] == "user":
            return _create_user(rest[len("user") :])
        case "/_start":
            _flags(rest, {"subscribe", "expire", "xftp", "main"})
            return StartChat()
        case "/_get" if rest.split()[:2] == ["item", "info"]:
            words = rest.split()[2:]
            if len(words) != 2:
                raise _Bad("usage: /_get item info @<contactId>|#<groupId> <itemId>")
            return GetItemInfo(chat_ref(words[0]), parse_id(words[1], "an item id"))
        case "/_get" if rest.split(" ", 1)[0] == "link":
            return GetGroupLink(_only_group("/_get link", rest[len("link") :]))
        case "/_create" if rest.split(" ", 1)[0] == "link":
            group_id, role = _group_and_role("/_create link", rest[len("link") :], "member")
            return CreateGroupLink(group_id, role)
        case "/_set" if rest.split()[:2] == ["link", "role"]:
            words = rest.split()[2:]
            group_id, role = _group_and_role("/_set link role", " ".join(words), None)
            return SetGroupLinkRole(group_id, role)
        case "/_update" if rest.split(" ", 1)[0] == "item":
            return _update_item(rest[len("item") :].strip())
        case "/_delete" if rest.split(" ", 1)[0] == "item":
            return _delete_items(rest[len("item") :].strip())
        case "/_delete" if rest.split()[:2] == ["member", "item"]:
            words = rest.split()[2:]
            if len(words) != 2:
                raise _Bad("usage: /_delete member item #<groupId> <itemId>[,<itemId>...]")
            group_id = _only_group("/_delete member item", words[0])
            return DeleteMemberItems(group_id, _id_list(words[1], "item ids"))
        case "/_reaction":
            return _reaction(rest)
        case "/_sync":
            return _sync(rest)
        case "/_settings":
            ref_token, _, settings = rest.partition(" ")
            obj = _json_object(settings, "chat settings")
            rcpts = obj.get("sendRcpts")
            if rcpts is not None and not isinstance(rcpts, bool):
                raise _Bad("sendRcpts must be true, false or null")
            return SetChatSettings(chat_ref(ref_token), rcpts)
        case "/_set" if rest.split()[:1] == ["prefs"]:
            ref_token, _, prefs = rest[len("prefs") :].strip().partition(" ")
            if not ref_token.startswith("@"):
                raise _Bad("usage: /_set prefs @<contactId> {Preferences}")
            return SetContactPrefs(chat_ref(ref_token).chat_id, _full_delete(prefs))
        case "/_set" if rest.split()[:1] == ["receipts"]:
            words = rest.split()[1:]
            if len(words) not in (3, 4) or words[0] not in ("contacts", "groups"):
                raise _Bad(
                    "usage: /_set receipts contacts|groups <userId> on|off [clear_overrides=on|off]"
                )
            on = _on_off("/_set receipts", words[2])
            return SetUserReceipts(words[0], parse_id(words[1], "a user id"), on)
        case "/_delete" if rest.split(" ", 1)[0] == "link":
            return DeleteGroupLink(_only_group("/_delete link", rest[len("link") :]))
        case "/address":
            _no_args(word, rest)
            return CreateMyAddress()
        case "/_address":
            return CreateMyAddress(_only_user(word, rest))
        case "/delete_address":
            _no_args(word, rest)
            return DeleteMyAddress()
        case "/_delete_address":
            return DeleteMyAddress(_only_user(word, rest))
        case "/auto_accept":
            return _auto_accept(rest, None)
        case "/_auto_accept":
            user_token, _, rest = rest.partition(" ")
            return _auto_accept(rest.strip(), parse_id(user_token, "a user id"))
        case "/_address_settings":
            return _address_settings(rest)
        case "/profile_address":
            return SetProfileAddress(_on_off(word, rest))
        case "/_profile_address":
            user_token, _, rest = rest.partition(" ")
            return SetProfileAddress(_on_off(word, rest.strip()), parse_id(user_token, "a user id"))
        case "/_accept" if rest.split(" ", 1)[0] != "member":
            words = rest.split()
            if words and words[0].startswith("incognito="):
                _refuse_incognito(words[0])
                words = words[1:]
            if len(words) != 1:
                raise _Bad("usage: /_accept <contactRequestId>")
            return AcceptContact(parse_id(words[0], "a contact request id"))
        case "/_reject":
            words = rest.split()
            if len(words) != 1:
                raise _Bad("usage: /_reject <contactRequestId>")
            return RejectContact(parse_id(words[0], "a contact request id"))
        case "/_profile":
            return _update_profile(rest)
        case "/p" | "/profile":
            if not rest:
                return ShowActiveUser()
            name, _, full = rest.partition(" ")
            return UpdateProfile(None, name, full.strip())
        case "/_group_profile":
            return _update_group_profile(rest)
        case "/_contacts":
            return ListContacts(_only_user(word, rest))
        case "/_groups":
            return _list_groups(rest)
        case "/_member" if rest.split(" ", 1)[0] == "role":
            return _members_role(rest[len("role") :])
        case "/_connect" if rest.split(" ", 1)[0] == "plan":
            words = rest.split()[1:]
            if len(words) != 2:
                raise _Bad("usage: /_connect plan <userId> <link>")
            return ConnectPlan(parse_id(words[0], "a user id"), words[1])
        case "/_stop":
            _no_args(word, rest)
            return StopChat()
        case "/_get" if rest.split(" ", 1)[0] == "chats":
            return _get_chats(rest[len("chats") :])
        case "/_get" if rest.split(" ", 1)[0] == "chat":
            return _get_chat(rest[len("chat") :].strip())
        case "/_send":
            return _send(rest)
        case "/connect" | "/c":
            return Connect(rest) if rest else AddContact()
        case "/_connect":
            return _api_connect(rest)
        case "/_group":
            return _new_group(rest)
        case "/_add":
            return _add_member(rest)
        case "/_join":
            return JoinGroup(_only_group(word, rest))
        case "/_members":
            return ListMembers(_only_group(word, rest))
        case "/_leave":
            return LeaveGroup(_only_group(word, rest))
        case "/_remove":
            return _remove_member(rest)
        case "/_delete" if rest[:1] in ("@", "#"):
            words = rest.split()
            mode = words[1:]
            if mode[:1] in (["full"], ["entity"]):  # the current API's delete mode
                mode = mode[1:]
            if mode and mode != ["notify=off"]:
                raise _Bad(f"unexpected {' '.join(words[1:])!r} after /_delete {words[0]}")
            return DeleteChat(chat_ref(words[0]))
        case "/_info":
            return _info(rest)
        case "/_read":
            words = rest.split()
            if len(words) < 2 or words[0] != "chat":
                raise _Bad("usage: /_read chat @<contactId>|#<groupId>")
            return ChatRead(chat_ref(words[1]))
        case "/show_address":
            _no_args(word, rest)
            return ShowMyAddress()
        case "/_show_address":
            return ShowMyAddress(_only_user(word, rest))
        case _ if word in _UNSUPPORTED:
            return Unsupported(word, _UNSUPPORTED[word])
    raise _Bad(f"unknown command {head!r}")


def _no_args(word: str, rest: str) -> None:
    if rest:
        raise _Bad(f"{word} takes no arguments")


def _flags(rest: str, known: set[str]) -> dict[str, bool]:
    """``key=on key=off ...``."""
    out: dict[str, bool] = {}
    for token in rest.split():
        key, eq, value = token.partition("=")
        if not eq or key not in known or value not in ("on", "off"):
            raise _Bad(f"unexpected {token!r} (expected {'/'.join(sorted(known))}=on|off)")
        out[key] = value == "on"
    return out


def _refuse_incognito(flag: str) -> None:
    """An ``incognito=on|off`` flag: only off (parley has no incognito profiles)."""
    if _flags(flag, {"incognito"})["incognito"]:
        raise _Bad("incognito profiles are not supported")


def _after_incognito(text: str) -> str:
    """`text` after its ``incognito=off`` flag, if it starts with one."""
    if text.startswith("incognito="):
        flag, _, text = text.partition(" ")
        _refuse_incognito(flag)
    return text.strip()


def parse_id(token: str, what: str) -> int:
    if not token.isascii() or not token.isdigit():
        raise _Bad(f"{what} must be a number, not {token!r}")
    value = int(token)
    if value > MAX_ID:
        raise _Bad(f"{what} {token} is too large")
    return value


def chat_ref(token: str) -> ChatRef:
    """``@3`` (contact 3) or ``#5`` (group 5)."""
    if token.startswith("<@"):
        raise _Bad("contact requests (<@id) do not exist in parley: it has no contact addresses")
    if token.startswith(":"):
        raise _Bad("pending connections (:id) cannot be addressed")
    if token[:1] == "@":
        return ChatRef("direct", parse_id(token[1:], "a contact id"))
    if token[:1] == "#":
        return ChatRef("group", parse_id(token[1:], "a group id"))
    raise _Bad(f"expected a chat (@<contactId> or #<groupId>), not {token!r}")


def _only_group(word: str, rest: str) -> int:
    words = rest.split()
    if len(words) != 1 or not words[0].startswith("#"):
        raise _Bad(f"usage: {word} #<groupId>")
    return parse_id(words[0][1:], "a group id")


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value: Any = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise _Bad(f"{what} is not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise _Bad(f"{what} must be a JSON object")
    return value


def _profile(obj: Any, what: str) -> tuple[str, str]:
    if not isinstance(obj, dict):
        raise _Bad(f"{what} must be a JSON object with displayName and fullName")
    name, full = obj.get("displayName"), obj.get("fullName", "")
    if not isinstance(name, str) or not name:
        raise _Bad(f"{what} needs a displayName (a non-empty string)")
    if not isinstance(full, str):
        raise _Bad(f"{what}: fullName must be a string")
    if obj.get("image"):
        raise _Bad(f"{what}: images are not supported")
    return name, full


def _create_user(rest: str) -> CreateActiveUser:
    """``/_create user {"profile": {...}, "sameServers": true, "pastTimestamp": false}``."""
    body = rest.strip()
    if not body:
        raise _Bad('usage: /_create user {"profile": {"displayName": ..., "fullName": ...}}')
    obj = _json_object(body, "the new user")
    if "profile" not in obj or obj["profile"] is None:
        raise _Bad("the new user needs a profile (parley does not make random ones)")
    return CreateActiveUser(*_profile(obj["profile"], "the profile"))


def _get_chats(rest: str) -> GetChats:
    """``/_get chats [<userId>] [pcc=on|off]`` and the current API's
    ``/_get chats <userId> [pcc=on] count=<n> [{ChatListQuery}]``."""
    text = rest.strip()
    query: dict[str, Any] | None = None
    if "{" in text:
        text, brace, body = text.partition("{")
        query = _json_object(brace + body, "the chat list query")
    words = text.split()
    if words and words[0].isdigit():
        words = words[1:]
    count: int | None = None
    rest_words = []
    for w in words:
        if w.startswith("count="):
            count = parse_id(w[len("count=") :], "count")
            if not 0 < count <= MAX_COUNT:
                raise _Bad(f"count must be from 1 to {MAX_COUNT}")
        elif w.startswith(("before=", "after=")):
            raise _Bad("paging the chat list by time (before=/after=) is not supported: use count=")
        else:
            rest_words.append(w)
    _flags(" ".join(rest_words), {"pcc"})
    if query is not None:
        kind = query.get("type")
        if kind == "search" or (
            kind == "filters" and (query.get("favorite") or query.get("unread"))
        ):
            raise _Bad("chat list filters (favorite, unread, search) are not supported")
    return GetChats(count)


_PAGE = re.compile(r"(count|before|after)=(\S+)")


def _get_chat(rest: str) -> GetChat:
    """``/_get chat @3 [before=<itemId>|after=<itemId>] count=20 [search=text]``."""
    ref_token, _, rest = rest.partition(" ")
    if not ref_token:
        raise _Bad("usage: /_get chat @<contactId>|#<groupId> count=<n>")
    ref = chat_ref(ref_token)
    search: str | None = None
    before_search, marker, found = rest.partition("search=")
    if marker:
        search, rest = found, before_search
    values: dict[str, int] = {}
    for token in rest.split():
        m = _PAGE.fullmatch(token)
        if m is None or m.group(1) in values:
            raise _Bad(f"unexpected {token!r} (expected [before=<id>|after=<id>] count=<n>)")
        values[m.group(1)] = parse_id(m.group(2), m.group(1))
    if "count" not in values:
        raise _Bad("/_get chat needs count=<n>")
    if "before" in values and "after" in values:
        raise _Bad("use before= or after=, not both")
    count = values["count"]
    if not 0 < count <= MAX_COUNT:
        raise _Bad(f"count must be from 1 to {MAX_COUNT}")
    return GetChat(ref, count, values.get("before"), values.get("after"), search or None)


def _send(rest: str) -> SendMessages:
    """``/_send @3 [live=off] [ttl=default] json [{"msgContent": {...}}, ...]`` or
    ``/_send @3 text hello``."""
    ref_token, _, rest = rest.partition(" ")
    if not ref_token:
        raise _Bad("usage: /_send @<contactId>|#<groupId> json [<composed messages>]")
    ref = chat_ref(ref_token)
    rest = rest.lstrip(" ")
    while True:
        token, _, after = rest.partition(" ")
        if token.startswith("live="):
            if token != "live=off":
                raise _Bad("live messages are not supported")
        elif token.startswith("ttl="):
            if token != "ttl=default":
                raise _Bad("disappearing messages (ttl=) are not supported")
        elif token.startswith("sign="):
            if token != "sign=off":
                raise _Bad("signed messages (sign=on) are not supported")
        else:
            break
        rest = after.lstrip(" ")
    if token == "text":
        if not after:
            raise _Bad("the message text is empty")
        return SendMessages(ref, (after,))
    if token != "json":
        raise _Bad("expected json [...] or text <message> after the chat")
    try:
        value: Any = json.loads(after)
    except (ValueError, RecursionError) as e:
        raise _Bad(f"the messages are not valid JSON: {e}") from e
    messages = value if isinstance(value, list) else [value]
    if not messages:
        raise _Bad("no messages to send")
    texts = tuple(_composed_text(m) for m in messages)
    quotes = tuple(_quoted_item(m) for m in messages)
    return SendMessages(ref, texts, quotes if any(q is not None for q in quotes) else ())


def _quoted_item(m: Any) -> int | None:
    q = m.get("quotedItemId") if isinstance(m, dict) else None
    if q is None:
        return None
    if type(q) is not int or q <= 0:
        raise _Bad("quotedItemId must be a positive item id")
    return q


def _item_head(rest: str, usage: str) -> tuple[ChatRef, str, str]:
    """``<chat> <item id(s)> <rest>``."""
    ref_token, _, rest = rest.partition(" ")
    ids, _, after = rest.strip().partition(" ")
    if not ref_token or not ids:
        raise _Bad(f"usage: {usage}")
    return chat_ref(ref_token), ids, after.strip()


def _update_item(rest: str) -> UpdateItem:
    usage = '/_update item @<contactId>|#<groupId> <itemId> json {"msgContent": {...}}'
    ref, item, after = _item_head(rest, usage)
    token, _, body = after.partition(" ")
    while token.startswith("live="):
        if token != "live=off":
            raise _Bad("live messages are not supported")
        token, _, body = body.strip().partition(" ")
    if token != "json":
        raise _Bad(f"usage: {usage}")
    obj = _json_object(body, "the updated message")
    message = obj if "msgContent" in obj else {"msgContent": obj}
    return UpdateItem(ref, parse_id(item, "an item id"), _composed_text(message))


def _delete_items(rest: str) -> DeleteItems:
    usage = "/_delete item @<contactId>|#<groupId> <itemId>[,<itemId>...] broadcast|internal"
    ref, ids, mode = _item_head(rest, usage)
    if mode not in ("broadcast", "internal", "internalMark"):
        raise _Bad(f"usage: {usage}")
    return DeleteItems(ref, _id_list(ids, "item ids"), mode == "broadcast")


def _sync(rest: str) -> SyncRatchet:
    usage = "/_sync @<contactId> [force=on] or /_sync #<groupId> <groupMemberId> [force=on]"
    words = rest.split()
    force = False
    if words and words[-1].startswith("force="):
        force = _flags(words.pop(), {"force"})["force"]
    if len(words) == 1 and words[0].startswith("@"):
        return SyncRatchet(chat_ref(words[0]), None, force)
    if len(words) == 2 and words[0].startswith("#"):
        return SyncRatchet(chat_ref(words[0]), parse_id(words[1], "a member id"), force)
    raise _Bad(f"usage: {usage}")


def _reaction(rest: str) -> SetReaction:
    usage = '/_reaction @<contactId>|#<groupId> <itemId> on|off json {"type": "emoji", ...}'
    ref, item, after = _item_head(rest, usage)
    on_off, _, after = after.partition(" ")
    token, _, body = after.strip().partition(" ")
    if on_off not in ("on", "off") or token != "json":
        raise _Bad(f"usage: {usage}")
    obj = _json_object(body, "the reaction")
    emoji = obj.get("emoji")
    if obj.get("type") != "emoji" or not isinstance(emoji, str):
        raise _Bad('only emoji reactions {"type": "emoji", "emoji": "..."} are supported')
    return SetReaction(ref, parse_id(item, "an item id"), on_off == "on", emoji)


def _composed_text(m: Any) -> str:
    """The text of one ComposedMessage ``{"msgContent": {"type": "text", "text": ...}}``."""
    if not isinstance(m, dict) or not isinstance(m.get("msgContent"), dict):
        raise _Bad('each message must be an object {"msgContent": {"type": "text", "text": ...}}')
    if m.get("filePath"):
        raise _Bad("parley does not transfer files (filePath)")
    if m.get("fileSource"):
        raise _Bad("parley does not transfer files (fileSource)")
    # mentions: parley has no mention metadata: the text (with its @names) is sent as is
    content = m["msgContent"]
    kind, text = content.get("type"), content.get("text")
    if kind != "text":
        raise _Bad(f"only text messages are supported, not {kind!r}")
    if not isinstance(text, str):
        raise _Bad("msgContent.text must be a string")
    return text


def _send_by_name(text: str) -> SendMessages:
    """``@bob hello`` / ``#team hello``; a name with spaces goes in single quotes."""
    kind: ChatType = "direct" if text[0] == "@" else "group"
    body = text[1:]
    if body.startswith("'"):
        name, quote, message = body[1:].partition("'")
        if not quote:
            raise _Bad("unterminated quoted name")
    else:
        name, _, message = body.partition(" ")
    message = message.removeprefix(" ")
    if not name or not message:
        raise _Bad(f"usage: {text[0]}name message")
    return SendMessages(NamedChatRef(kind, name), (message,))


def _api_connect(rest: str) -> AddContact | Connect:
    """``/_connect <userId> [incognito=on|off] [link]``."""
    words = rest.split()
    if not words or not words[0].isdigit():
        raise _Bad("usage: /_connect <userId> [link]")
    words = words[1:]
    if words and words[0].startswith("incognito="):
        _refuse_incognito(words[0])
        words = words[1:]
    if len(words) > 2:
        raise _Bad("a link has no spaces")
    # (the current API may add the short form of a prepared link: parley has one form)
    return Connect(words[0]) if words else AddContact()


def _new_group(rest: str) -> NewGroup:
    """``/_group [<userId>] [incognito=off] {"displayName": ..., "fullName": ...}``."""
    body = rest
    if body[:1].isdigit():
        _, _, body = body.partition(" ")
    body = _after_incognito(body.lstrip())
    if not body:
        raise _Bad('usage: /_group {"displayName": ..., "fullName": ...}')
    return NewGroup(*_profile(_json_object(body, "the group profile"), "the group profile"))


def _add_member(rest: str) -> AddMember:
    """``/_add #<groupId> <contactId> [role]``."""
    words = rest.split()
    if len(words) not in (2, 3) or not words[0].startswith("#"):
        raise _Bad("usage: /_add #<groupId> <contactId> [member|admin|observer]")
    role = words[2] if len(words) == 3 else "member"
    if role not in ROLES:
        raise _Bad(f"unknown role {role!r} (member, admin or observer)")
    return AddMember(
        parse_id(words[0][1:], "a group id"),
        parse_id(words[1], "a contact id"),
        role,
    )


def _remove_member(rest: str) -> RemoveMember:
    """``/_remove #<groupId> <groupMemberId>[,<groupMemberId>...] [messages=off]``."""
    words = rest.split()
    if words[2:] == ["messages=off"]:
        words = words[:2]
    elif words[2:] == ["messages=on"]:
        raise _Bad("removing a member's messages (messages=on) is not supported")
    if len(words) != 2 or not words[0].startswith("#"):
        raise _Bad("usage: /_remove #<groupId> <groupMemberId>[,<groupMemberId>...]")
    ids = _id_list(words[1], "a member id")
    return RemoveMember(parse_id(words[0][1:], "a group id"), ids[0], ids[1:], "," in words[1])


def _id_list(token: str, what: str) -> tuple[int, ...]:
    ids = tuple(parse_id(t, what) for t in token.split(","))
    if len(set(ids)) != len(ids):
        raise _Bad(f"{what} is listed twice")
    return ids


def _only_user(word: str, rest: str) -> int:
    words = rest.split()
    if len(words) != 1:
        raise _Bad(f"usage: {word} <userId>")
    return parse_id(words[0], "a user id")


def _on_off(word: str, rest: str) -> bool:
    if rest not in ("on", "off"):
        raise _Bad(f"usage: {word} on|off")
    return rest == "on"


def _role(token: str) -> Role:
    for role in ROLES:
        if token == role:
            return role
    raise _Bad(f"unknown role {token!r} (owner, admin, member or observer)")


def _group_and_role(word: str, rest: str, default: Role | None) -> tuple[int, Role]:
    """``#<groupId> [role]``."""
    words = rest.split()
    if not words or not words[0].startswith("#") or len(words) > 2:
        raise _Bad(f"usage: {word} #<groupId> <role>")
    if len(words) == 1:
        if default is None:
            raise _Bad(f"usage: {word} #<groupId> <role>")
        return parse_id(words[0][1:], "a group id"), default
    return parse_id(words[0][1:], "a group id"), _role(words[1])


def _welcome(content: Any) -> str:
    """The text of a welcome message (a MsgContent)."""
    if not isinstance(content, dict) or content.get("type") != "text":
        raise _Bad("the welcome message must be a text message content")
    text = content.get("text")
    if not isinstance(text, str):
        raise _Bad("the welcome message's text must be a string")
    return text


def _auto_accept(rest: str, user_id: int | None) -> SetAutoAccept:
    """``on [incognito=on|off] [json {MsgContent} | text <welcome>]`` or ``off``."""
    head, _, more = rest.partition(" ")
    if head == "off":
        if more.strip():
            raise _Bad("usage: /auto_accept off")
        return SetAutoAccept(False, None, user_id)
    if head != "on":
        raise _Bad("usage: /auto_accept on [json {msgContent}] | /auto_accept off")
    more = _after_incognito(more.strip())
    if not more:
        return SetAutoAccept(True, None, user_id)
    kind, _, body = more.partition(" ")
    if kind == "json":
        try:
            content: Any = json.loads(body)
        except (ValueError, RecursionError) as e:
            raise _Bad(f"the welcome message is not valid JSON: {e}") from e
        return SetAutoAccept(True, _welcome(content) or None, user_id)
    if kind == "text":
        return SetAutoAccept(True, body.strip() or None, user_id)
    raise _Bad(f"unexpected {more!r} (expected json {{msgContent}} or text <welcome>)")


def _address_settings(rest: str) -> SetAutoAccept:
    """``/_address_settings <userId> {"businessAddress": false, "autoAccept": {...},
    "autoReply": {MsgContent}}``."""
    user_token, _, body = rest.partition(" ")
    user_id = parse_id(user_token, "a user id")
    settings = _json_object(body.strip(), "the address settings")
    if settings.get("businessAddress"):
        raise _Bad("business addresses are not supported")
    accept = settings.get("autoAccept")
    if accept is not None and not isinstance(accept, dict):
        raise _Bad("autoAccept must be an object")
    if accept and accept.get("acceptIncognito"):
        raise _Bad("incognito profiles are not supported")
    reply = settings.get("autoReply")
    welcome = _welcome(reply) if reply is not None else None
    return SetAutoAccept(accept is not None, welcome or None, user_id, current=True)


def _update_group_profile(rest: str) -> UpdateGroupProfile:
    """``/_group_profile #<groupId> {GroupProfile}``."""
    ref, _, body = rest.partition(" ")
    if not ref.startswith("#") or not body.strip():
        raise _Bad('usage: /_group_profile #<groupId> {"displayName": ..., "fullName": ...}')
    group_id = parse_id(ref[1:], "a group id")
    obj = _json_object(body.strip(), "the group profile")
    return UpdateGroupProfile(group_id, *_profile(obj, "the group profile"))


def _update_profile(rest: str) -> UpdateProfile:
    """``/_profile <userId> {Profile}``."""
    user_token, _, body = rest.partition(" ")
    user_id = parse_id(user_token, "a user id")
    obj = _json_object(body.strip(), "the profile")
    name, full = _profile(obj, "the profile")
    return UpdateProfile(user_id, name, full)


def _list_groups(rest: str) -> ListGroups:
    """``/_groups <userId> [@<contactId>] [search]``."""
    user_token, _, more = rest.partition(" ")
    user_id = parse_id(user_token, "a user id")
    more = more.strip()
    contact_id: int | None = None
    if more.startswith("@"):
        token, _, more = more.partition(" ")
        contact_id = parse_id(token[1:], "a contact id")
        more = more.strip()
    return ListGroups(user_id, contact_id, more or None)


def _members_role(rest: str) -> SetMembersRole:
    """``/_member role #<groupId> <groupMemberId>[,...] <role>``."""
    words = rest.split()
    if len(words) != 3 or not words[0].startswith("#"):
        raise _Bad("usage: /_member role #<groupId> <groupMemberId>[,...] <role>")
    return SetMembersRole(
        parse_id(words[0][1:], "a group id"), _id_list(words[1], "a member id"), _role(words[2])
    )


def _info(rest: str) -> ContactInfo | GroupMemberInfo:
    """``/_info @<contactId>`` or ``/_info #<groupId> <groupMemberId>``."""
    words = rest.split()
    if len(words) == 1 and words[0].startswith("@"):
        return ContactInfo(parse_id(words[0][1:], "a contact id"))
    if len(words) == 2 and words[0].startswith("#"):
        return GroupMemberInfo(
            parse_id(words[0][1:], "a group id"), parse_id(words[1], "a member id")
        )
    raise _Bad("usage: /_info @<contactId> or /_info #<groupId> <groupMemberId>")


def _full_delete(text: str) -> bool | None:
    """Preferences' ``fullDelete.allow`` as parley's full deletion setting."""
    pref = _json_object(text, "preferences").get("fullDelete")
    if pref is None:
        return None
    allow = pref.get("allow") if isinstance(pref, dict) else None
    if allow not in ("always", "yes", "no"):
        raise _Bad('fullDelete must be {"allow": "always"|"yes"|"no"}')
    return bool(allow != "no")
