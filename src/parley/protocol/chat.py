"""The chat protocol (sans-I/O): the JSON messages chat clients send each other.

docs/chat-protocol.md describes the wire format, every event, which connection it travels
on, and the group-joining sequence. A chat message is the opaque body of one agent message
(or the connection info of an agent confirmation):

    {"v": 1, "msgId": "<16 base64url chars>", "event": "<name>", "params": {...}}

In Python a message is a `ChatMessage(msg_id, params)`; its event name follows from the
type of `params` (one `msgspec.Struct` per event, see `PARAMS_TYPES`). Use
`encode_chat_message` and `decode_chat_message`; both raise only `ChatMessageError`.
Building a params struct or a `ChatMessage` with an invalid id or name raises
`ChatMessageError` at once.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final, Literal, TypeAlias, dataclass_transform, get_args

import msgspec

CHAT_VERSION: Final = 1

# The agent carries at most 14800 bytes per message, so no chat message may be larger.
MAX_CHAT_MESSAGE: Final = 14800
# Room kept for the x.grp.msg.forward envelope around a forwarded message (about 110 bytes
# today), so that every message a member sends can be forwarded by the host.
FORWARD_RESERVE: Final = 200
# The limit for every message that is not itself an x.grp.msg.forward.
MAX_ORIGINAL_MESSAGE: Final = MAX_CHAT_MESSAGE - FORWARD_RESERVE

MAX_NAME_LENGTH: Final = 100  # displayName, in characters (code points)
MAX_FULL_NAME_LENGTH: Final = 200

# ---------------------------------------------------------------- event names

X_INFO: Final = "x.info"
X_OK: Final = "x.ok"
X_CONTACT: Final = "x.contact"
X_MSG_NEW: Final = "x.msg.new"
X_MSG_UPDATE: Final = "x.msg.update"
X_MSG_DEL: Final = "x.msg.del"
X_MSG_REACT: Final = "x.msg.react"
X_GRP_INV: Final = "x.grp.inv"
X_GRP_ACPT: Final = "x.grp.acpt"
X_GRP_MEM_NEW: Final = "x.grp.mem.new"
X_GRP_MEM_INTRO: Final = "x.grp.mem.intro"
X_GRP_MEM_INV: Final = "x.grp.mem.inv"
X_GRP_MEM_FWD: Final = "x.grp.mem.fwd"
X_GRP_MEM_INFO: Final = "x.grp.mem.info"
X_GRP_MEM_CON: Final = "x.grp.mem.con"
X_GRP_MEM_CON_ALL: Final = "x.grp.mem.con.all"
X_GRP_MSG_FORWARD: Final = "x.grp.msg.forward"
X_GRP_LEAVE: Final = "x.grp.leave"
X_GRP_MEM_DEL: Final = "x.grp.mem.del"
X_GRP_DEL: Final = "x.grp.del"
X_GRP_MEM_ROLE: Final = "x.grp.mem.role"
X_GRP_LINK_MEM: Final = "x.grp.link.mem"
X_GRP_INFO: Final = "x.grp.info"

# Events a member broadcasts to the whole group, which the host therefore forwards (inside
# x.grp.msg.forward) to members not yet connected to the author. The codec accepts any
# non-forward event inside a forward; receivers act only on these and ignore the rest.
FORWARDABLE_EVENTS: Final = frozenset(
    {
        X_MSG_NEW,
        X_MSG_UPDATE,
        X_MSG_DEL,
        X_MSG_REACT,
        X_GRP_LEAVE,
        X_GRP_MEM_DEL,
        X_GRP_DEL,
        X_GRP_MEM_ROLE,
        X_INFO,
        X_GRP_INFO,
    }
)

# a reaction is one emoji: at most this many code points (a flag, a skin tone, a ZWJ
# sequence), and at most this many distinct reactions per member on one item
MAX_EMOJI_LENGTH: Final = 8
MAX_REACTIONS_PER_MEMBER: Final = 3

MemberRole: TypeAlias = Literal["owner", "admin", "member", "observer"]
# from the least to the most powerful
MEMBER_ROLES: Final[tuple[MemberRole, ...]] = ("observer", "member", "admin", "owner")


class ChatMessageError(ValueError):
    """A chat message that cannot be decoded or encoded; `reason` says why, plainly.

    `event` and `msg_id` are set when the message got far enough to show them (an unknown
    event, invalid params), so the caller can answer or ignore it deliberately.
    """

    def __init__(self, reason: str, *, event: str | None = None, msg_id: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.event = event
        self.msg_id = msg_id


# ---------------------------------------------------------------- ids and names

_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{16}")
# C0 and C1 control characters, DEL, and the Unicode line and paragraph separators
_CONTROL_RE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _new_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(12)).decode("ascii")


def new_msg_id() -> str:
    """A fresh random message id: 12 random bytes, base64url (16 characters, no padding)."""
    return _new_id()


def new_member_id() -> str:
    """A fresh random member id, in the same form as a message id."""
    return _new_id()


def is_valid_id(value: object) -> bool:
    """True for a well-formed msgId or memberId: exactly 16 base64url characters."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def _check_id(value: object, what: str) -> None:
    if not is_valid_id(value):
        raise ChatMessageError(f"bad {what}: expected 16 base64url characters (12 bytes)")


def _check_display_name(value: str, what: str) -> None:
    if not value:
        raise ChatMessageError(f"{what} is empty")
    if len(value) > MAX_NAME_LENGTH:
        raise ChatMessageError(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    if value.isspace():
        raise ChatMessageError(f"{what} is only whitespace")
    if _CONTROL_RE.search(value):
        raise ChatMessageError(f"{what} contains a control character")


def _check_msg_ref(msg_id: str, member_id: str | None, what: str = "") -> None:
    """A message's id and (in groups) its author's member id, if given."""
    _check_id(msg_id, f"{what}msgId")
    if member_id is not None:
        _check_id(member_id, f"{what}memberId")


def _check_full_name(value: str, what: str) -> None:
    if len(value) > MAX_FULL_NAME_LENGTH:
        raise ChatMessageError(f"{what} is longer than {MAX_FULL_NAME_LENGTH} characters")
    if _CONTROL_RE.search(value):
        raise ChatMessageError(f"{what} contains a control character")


# ---------------------------------------------------------------- parts


# (for type checkers, as at run time, its subclasses are frozen without saying so)
@dataclass_transform(frozen_default=True, field_specifiers=(msgspec.field,))
class _Wire(msgspec.Struct, frozen=True, rename="camel"):
    """Base of every struct below: immutable, camelCase on the wire."""


class _ByMember(_Wire):
    """Base of the structs that name a member by `member_id` (first on the wire)."""

    member_id: str

    def __post_init__(self) -> None:
        _check_id(self.member_id, "memberId")


class _Names(_Wire):
    """A display name and a full name, checked on creation (`whose` begins the error)."""

    whose: ClassVar[str]
    display_name: str
    full_name: str = ""

    def __post_init__(self) -> None:
        _check_display_name(self.display_name, f"{self.whose}displayName")
        _check_full_name(self.full_name, f"{self.whose}fullName")


class Profile(_Names):
    whose = ""


class GroupProfile(_Names):
    whose = "group "


class MemberIdRole(_ByMember):
    member_role: MemberRole


class MemberInfo(MemberIdRole):
    profile: Profile


class IntroInvitation(_Wire):
    """The two invitation links a newcomer makes for one introduced member."""

    group_conn_req: str
    direct_conn_req: str

    def __post_init__(self) -> None:
        if not self.group_conn_req or not self.direct_conn_req:
            raise ChatMessageError("empty invitation link in memberIntro")


class TextContent(_Wire, tag_field="type", tag="text"):
    """`{"type": "text", "text": ...}`; the text may be empty and may hold newlines."""

    text: str


# A union once more content types exist; every member carries a "type" tag.
MsgContent: TypeAlias = TextContent


class MsgRef(_Wire, omit_defaults=True):
    """Which message a quote names: its msgId, whether the quoting side sent it, and (in
    groups) its author's memberId."""

    msg_id: str
    sent: bool
    member_id: str | None = None

    def __post_init__(self) -> None:
        _check_msg_ref(self.msg_id, self.member_id, "quoted ")


class QuotedMsg(_Wire):
    """A quote in x.msg.new: the reference and the quoted text (shown as is when the
    receiver does not have the quoted message)."""

    msg_ref: MsgRef
    content: MsgContent


def is_valid_emoji(value: object) -> bool:
    """One emoji: 1 to MAX_EMOJI_LENGTH code points, at least one a symbol, none a letter,
    digit, space, punctuation or control character."""
    import unicodedata

    if not isinstance(value, str) or not 0 < len(value) <= MAX_EMOJI_LENGTH:
        return False
    cats = [unicodedata.category(ch) for ch in value]
    if any(cat[0] in "LNZPC" and cat != "Cf" for cat in cats):
        return False  # (Cf: the zero-width joiner and variation selectors are allowed)
    return any(cat == "So" for cat in cats)


class Reaction(_Wire, tag_field="type", tag="emoji"):
    """`{"type": "emoji", "emoji": "👍"}`."""

    emoji: str

    def __post_init__(self) -> None:
        if not is_valid_emoji(self.emoji):
            raise ChatMessageError(f"invalid emoji reaction {_show(self.emoji)}")


# ---------------------------------------------------------------- params, one per event


class _WithProfile(_Wire):
    profile: Profile


class _WithMemberInfo(_Wire):
    member_info: MemberInfo


class XInfo(_WithProfile):
    """A contact's profile: the joiner's connection info on a contact connection."""

    event: ClassVar[str] = X_INFO


class XOk(_WithProfile):
    """The inviter's profile: its connection info when it allows a connection."""

    event: ClassVar[str] = X_OK


class XContact(_WithProfile):
    """The requester's info in a request to a contact address: its profile, and an id it
    keeps for that address (the same in a repeated request, so the owner knows it)."""

    event: ClassVar[str] = X_CONTACT
    x_contact_id: str

    def __post_init__(self) -> None:
        _check_id(self.x_contact_id, "xContactId")


class XMsgNew(_Wire, omit_defaults=True):
    event: ClassVar[str] = X_MSG_NEW
    content: MsgContent
    quote: QuotedMsg | None = None


class XMsgUpdate(_Wire):
    """The author edits its message `msg_id`: `edit` counts the author's edits of it (1,
    2, ...), so that a late or repeated edit is applied once and never over a newer one."""

    event: ClassVar[str] = X_MSG_UPDATE
    msg_id: str
    content: MsgContent
    edit: int = 1

    def __post_init__(self) -> None:
        _check_id(self.msg_id, "msgId")
        if self.edit < 1:
            raise ChatMessageError("edit must be 1 or more")


class XMsgDel(_Wire, omit_defaults=True):
    """Delete message `msg_id` for everyone: the author's own, or (moderation, in groups)
    the message of member `member_id` by an admin or owner."""

    event: ClassVar[str] = X_MSG_DEL
    msg_id: str
    member_id: str | None = None

    def __post_init__(self) -> None:
        _check_msg_ref(self.msg_id, self.member_id)


class XMsgReact(_Wire, omit_defaults=True):
    """Add (or remove) a reaction to message `msg_id` (in groups, by member `member_id`)."""

    event: ClassVar[str] = X_MSG_REACT
    msg_id: str
    reaction: Reaction
    add: bool
    member_id: str | None = None

    def __post_init__(self) -> None:
        _check_msg_ref(self.msg_id, self.member_id)


class XGrpInv(_Wire):
    """The host invites a contact to a group (on the contact connection)."""

    event: ClassVar[str] = X_GRP_INV
    from_member: MemberIdRole
    invited_member: MemberIdRole
    conn_request: str
    group_profile: GroupProfile

    def __post_init__(self) -> None:
        if not self.conn_request:
            raise ChatMessageError("empty connRequest")
        if self.from_member.member_id == self.invited_member.member_id:
            raise ChatMessageError("fromMember and invitedMember have the same memberId")


class XGrpAcpt(_ByMember):
    """The invitee's connection info when it joins the group link; its own member id."""

    event: ClassVar[str] = X_GRP_ACPT


class XGrpMemNew(_WithMemberInfo):
    event: ClassVar[str] = X_GRP_MEM_NEW


class XGrpMemIntro(_WithMemberInfo):
    event: ClassVar[str] = X_GRP_MEM_INTRO


class XGrpMemInv(_ByMember):
    """The newcomer's two links for the introduced member `member_id`, sent to the host."""

    event: ClassVar[str] = X_GRP_MEM_INV
    member_intro: IntroInvitation


class XGrpMemFwd(_WithMemberInfo):
    """The host forwards the newcomer's info and links to an existing member."""

    event: ClassVar[str] = X_GRP_MEM_FWD
    member_intro: IntroInvitation


class XGrpMemInfo(_ByMember):
    """Connection info on both member connections; `member_id` is the sender's own id."""

    event: ClassVar[str] = X_GRP_MEM_INFO
    profile: Profile


class XGrpMemCon(_ByMember):
    """To the host: the sender is now connected to `member_id`."""

    event: ClassVar[str] = X_GRP_MEM_CON


class XGrpMemConAll(_ByMember):
    """To the host: the sender (`member_id`, its own id) is connected to everyone."""

    event: ClassVar[str] = X_GRP_MEM_CON_ALL


class XGrpMsgForward(_ByMember):
    """The host forwards `msg`, written by member `member_id`, to a member not yet
    connected to that author. `msg` keeps its own msgId; it cannot be a forward itself."""

    event: ClassVar[str] = X_GRP_MSG_FORWARD
    msg: ChatMessage

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.msg.params, XGrpMsgForward):
            raise ChatMessageError("x.grp.msg.forward cannot be forwarded")


class XGrpLeave(_Wire):
    event: ClassVar[str] = X_GRP_LEAVE


class XGrpMemDel(_ByMember):
    event: ClassVar[str] = X_GRP_MEM_DEL


class XGrpDel(_Wire):
    event: ClassVar[str] = X_GRP_DEL


class XGrpMemRole(_ByMember):
    """A member's new role, announced by an owner or admin to the group."""

    event: ClassVar[str] = X_GRP_MEM_ROLE
    role: MemberRole


class XGrpLinkMem(_Wire):
    """(the host, to a member who joined through the group link) the host's own member
    profile in the group, and the member's id and role; sent first on the connection."""

    event: ClassVar[str] = X_GRP_LINK_MEM
    group_profile: GroupProfile
    from_member: MemberInfo
    invited_member: MemberIdRole


class XGrpInfo(_Wire):
    """The group's new profile, announced by an owner to the group."""

    event: ClassVar[str] = X_GRP_INFO
    group_profile: GroupProfile


Params: TypeAlias = (
    XInfo
    | XOk
    | XContact
    | XMsgNew
    | XMsgUpdate
    | XMsgDel
    | XMsgReact
    | XGrpInv
    | XGrpAcpt
    | XGrpMemNew
    | XGrpMemIntro
    | XGrpMemInv
    | XGrpMemFwd
    | XGrpMemInfo
    | XGrpMemCon
    | XGrpMemConAll
    | XGrpMsgForward
    | XGrpLeave
    | XGrpMemDel
    | XGrpDel
    | XGrpMemRole
    | XGrpLinkMem
    | XGrpInfo
)

# event name -> params type
PARAMS_TYPES: Final[Mapping[str, type[Params]]] = MappingProxyType(
    {cls.event: cls for cls in get_args(Params)}
)
EVENTS: Final = frozenset(PARAMS_TYPES)


class ChatMessage(msgspec.Struct, frozen=True):
    """One chat message. Encode it with `encode_chat_message`, not with msgspec directly."""

    msg_id: str
    params: Params

    def __post_init__(self) -> None:
        _check_id(self.msg_id, "msgId")

    @property
    def event(self) -> str:
        return self.params.event


def make(params: Params, msg_id: str | None = None) -> ChatMessage:
    """A message with these params and a fresh msgId (or the one given)."""
    return ChatMessage(new_msg_id() if msg_id is None else msg_id, params)


def forward(author_member_id: str, msg: ChatMessage) -> ChatMessage:
    """The host's x.grp.msg.forward of `msg`, written by `author_member_id`."""
    return make(XGrpMsgForward(author_member_id, msg))


# ---------------------------------------------------------------- encoding


class _Envelope(msgspec.Struct, rename="camel"):
    v: int
    msg_id: str
    event: str
    params: Any


class _WireForward(msgspec.Struct, rename="camel"):
    member_id: str
    msg: _Envelope


_encoder: Final = msgspec.json.Encoder()


def _to_wire(msg: ChatMessage) -> _Envelope:
    params: Any = msg.params
    if isinstance(params, XGrpMsgForward):
        params = _WireForward(params.member_id, _to_wire(params.msg))
    return _Envelope(CHAT_VERSION, msg.msg_id, msg.event, params)


def _check_size(data: bytes, msg: ChatMessage) -> None:
    """Only a forward may take the room kept for its envelope."""
    limit = MAX_CHAT_MESSAGE if msg.event == X_GRP_MSG_FORWARD else MAX_ORIGINAL_MESSAGE
    if len(data) > limit:
        raise ChatMessageError(
            f"message too large: {len(data)} bytes (limit {limit} for {msg.event})",
            event=msg.event,
            msg_id=msg.msg_id,
        )


def encode_chat_message(msg: ChatMessage) -> bytes:
    """The UTF-8 JSON of `msg`. Raises ChatMessageError if it is too large or invalid:
    the output is decoded again and compared, so whatever encodes also decodes, to the
    same message."""
    try:
        data = _encoder.encode(_to_wire(msg))
    except (TypeError, ValueError, OverflowError) as e:  # e.g. a lone surrogate in a str
        raise ChatMessageError(f"cannot encode {msg.event}: {e}", event=msg.event) from None
    _check_size(data, msg)
    if decode_chat_message(data) != msg:  # e.g. bytes where a str belongs
        raise ChatMessageError(
            f"cannot encode {msg.event}: a field has the wrong type", event=msg.event
        )
    return data


# ---------------------------------------------------------------- decoding


def _show(value: object) -> str:
    """A short printable form of an untrusted value for an error message."""
    text = value if isinstance(value, str) and value.isprintable() else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def decode_chat_message(data: bytes) -> ChatMessage:
    """Parse one chat message. Raises only ChatMessageError, with a plain reason."""
    if len(data) > MAX_CHAT_MESSAGE:
        raise ChatMessageError(f"message too large: {len(data)} bytes (limit {MAX_CHAT_MESSAGE})")
    try:
        obj = msgspec.json.decode(data)
    except (msgspec.MsgspecError, ValueError, RecursionError) as e:
        raise ChatMessageError(f"invalid JSON: {e}") from None
    msg = _from_object(obj, forwarded=False)
    _check_size(data, msg)
    return msg


def _from_object(obj: object, *, forwarded: bool) -> ChatMessage:
    what = "forwarded message" if forwarded else "message"
    if not isinstance(obj, dict):
        raise ChatMessageError(f"{what} is not a JSON object")
    if "v" not in obj:
        raise ChatMessageError(f"{what} has no version (v)")
    v = obj["v"]
    if type(v) is not int or v != CHAT_VERSION:
        raise ChatMessageError(f"unknown version {_show(v)}")
    if "msgId" not in obj:
        raise ChatMessageError(f"{what} has no msgId")
    msg_id = obj["msgId"]
    _check_id(msg_id, "msgId")
    event = obj.get("event")
    if not isinstance(event, str):
        raise ChatMessageError(f"{what} has no event name", msg_id=msg_id)
    cls = PARAMS_TYPES.get(event)
    if cls is None:
        raise ChatMessageError(f"unknown event {_show(event)}", event=event, msg_id=msg_id)
    if forwarded and cls is XGrpMsgForward:
        raise ChatMessageError(f"{event} cannot be forwarded", event=event, msg_id=msg_id)
    if "params" not in obj:
        raise ChatMessageError(f"missing params for {event}", event=event, msg_id=msg_id)
    raw = obj["params"]
    if not isinstance(raw, dict):
        raise ChatMessageError(
            f"params of {event} is not a JSON object", event=event, msg_id=msg_id
        )
    params = _params_from_object(cls, raw, event=event, msg_id=msg_id)
    return ChatMessage(msg_id, params)


def _params_from_object(
    cls: type[Params], raw: dict[str, Any], *, event: str, msg_id: str
) -> Params:
    def invalid(reason: str) -> ChatMessageError:
        return ChatMessageError(f"invalid params for {event}: {reason}", event=event, msg_id=msg_id)

    if cls is XGrpMsgForward:
        # the nested message is validated as a whole chat message, not by msgspec
        if "msg" not in raw:
            raise invalid("missing msg")
        try:
            head = msgspec.convert(raw, _ForwardHead)
        except msgspec.ValidationError as e:
            raise invalid(str(e)) from None
        try:
            inner = _from_object(raw["msg"], forwarded=True)
        except ChatMessageError as e:
            raise ChatMessageError(
                f"forwarded message: {e.reason}", event=event, msg_id=msg_id
            ) from None
        return XGrpMsgForward(head.member_id, inner)
    if cls is XMsgNew:
        content = raw.get("content")
        if isinstance(content, dict) and "type" not in content:
            raise invalid("missing content type - at `$.content`")
    try:
        return msgspec.convert(raw, cls)
    except msgspec.ValidationError as e:
        raise invalid(str(e)) from None


class _ForwardHead(_ByMember):
    """The forward's author, read before its message."""
