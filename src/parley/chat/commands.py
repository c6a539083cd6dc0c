"""The chat's typed commands, in simplex-chat style: a pure parser from a line to a value.

`parse_command(line)` returns one of the command structs below or raises `ParseError`
with a message a person can act on; it does no I/O and knows nothing about the state of
the chat, so a name that might be a contact or a group (as in `/tail bob`) is passed on
as such for the front end to resolve.

Names are written bare (`bob`, `team`) or with their prefix (`@bob`, `#team`); a name
with spaces is quoted: `@'Bob Smith' hi`, `/a team "Bob Smith"`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import dataclass_transform

import msgspec

from parley.chat.events import camel_case

ROLES = ("admin", "member", "observer")
DEFAULT_TAIL = 10
MAX_TAIL = 1000


class ParseError(ValueError):
    """The line is not a valid command; the message says what is wrong and how to fix it."""


# ---------------------------------------------------------------- commands


# (for type checkers, as at run time, its subclasses are frozen without saying so)
@dataclass_transform(frozen_default=True, field_specifiers=(msgspec.field,))
class _Command(msgspec.Struct, frozen=True, tag=camel_case):
    """Base of every command: tagged with its class name, camelCase."""


# contacts and the address


class NewInvitation(_Command):
    """`/c`: make a one-time invitation link for a new contact."""


class Connect(_Command):
    """`/c LINK`: connect to a contact through their invitation link."""

    link: str


class ListContacts(_Command):
    """`/cs`, `/contacts`."""


class _ContactCommand(_Command):
    contact: str


class SendContactMessage(_ContactCommand):
    """`@name text`."""

    text: str


class DeleteContact(_ContactCommand):
    """`/d @name`."""


class CreateAddress(_Command):
    """`/ad`: make your long-term contact address."""


class ShowAddress(_Command):
    """`/sa`: show your address (with a QR code) and its auto-accept setting."""


class DeleteAddress(_Command):
    """`/da`: delete your address (contacts made through it stay)."""


class AutoAccept(_Command):
    """`/auto_accept on|off [welcome message]`."""

    on: bool
    welcome: str = ""


class _NameCommand(_Command):
    name: str


class AcceptRequest(_NameCommand):
    """`/ac name`: accept a contact request."""


class RejectRequest(_NameCommand):
    """`/rc name`: reject a contact request."""


class Info(_NameCommand):
    """`/i @contact` or `/i #group member`: profile and connection status."""

    group: str | None = None


# groups


class ListGroups(_Command):
    """`/gs`, `/groups`."""


class _GroupCommand(_Command):
    group: str


class CreateGroup(_GroupCommand):
    """`/g name [full name]`."""

    full_name: str = ""


class AddMember(_GroupCommand):
    """`/a group contact [role]`."""

    contact: str
    role: str = "member"


class JoinGroup(_GroupCommand):
    """`/j group`."""


class SendGroupMessage(_GroupCommand):
    """`#group text`."""

    text: str


class ListMembers(_GroupCommand):
    """`/ms group`: the members and how their connections are doing."""


class LeaveGroup(_GroupCommand):
    """`/l group`."""


class RemoveMember(_GroupCommand):
    """`/rm group member`."""

    member: str


class DeleteGroup(_GroupCommand):
    """`/d #group`."""


class CreateGroupLink(_GroupCommand):
    """`/create link #group [role]`."""

    role: str = "member"


class ShowGroupLink(_GroupCommand):
    """`/show link #group`."""


class DeleteGroupLink(_GroupCommand):
    """`/delete link #group`."""


class SetGroupLinkRole(_GroupCommand):
    """`/set link role #group role`."""

    role: str


class SetMemberRole(_GroupCommand):
    """`/mr #group member role`."""

    member: str
    role: str


class GroupProfile(_GroupCommand):
    """`/gp #group name [full name]`: change a group's profile (owners)."""

    display_name: str
    full_name: str = ""


# messages


class SendToLast(_Command):
    """Plain text: sent to the last chat (the last contact or group you wrote to or got a
    message from)."""

    text: str


class Tail(_Command):
    """`/tail [@contact|#group|name] [n]`: the last n messages (all chats if none given).

    At most one of `contact`, `group` and `name` is set; `name` is a bare name that may
    be a contact or a group, for the front end to resolve."""

    count: int = DEFAULT_TAIL
    contact: str | None = None
    group: str | None = None
    name: str | None = None


class EditMessage(_Command):
    """`! @bob (old) new`, `! #team (old) new`: edit your latest message starting with
    `old` (the latest of yours if `old` is empty)."""

    text: str
    old: str = ""
    contact: str | None = None
    group: str | None = None


class DeleteMessage(_Command):
    """`\\ @bob text`: delete your message starting with `text` for everyone;
    `\\\\ #team @bob text` (admin, owner): delete bob's message for everyone."""

    text: str
    contact: str | None = None
    group: str | None = None
    member: str | None = None


class ReplyMessage(_Command):
    """`> @bob (quoted) reply` quotes bob's message starting with `quoted`; `>> @bob
    (quoted) reply` one of yours; `> #team @bob (quoted) reply` bob's in the group."""

    quoted: str
    text: str
    contact: str | None = None
    group: str | None = None
    member: str | None = None
    own: bool = False


class ReactMessage(_Command):
    """`+👍 @bob text` (or `-👍 ...` to remove it): react to the latest message starting
    with `text`; `+👍 #team @bob text` in a group."""

    emoji: str
    add: bool
    text: str
    contact: str | None = None
    group: str | None = None
    member: str | None = None


class SyncRatchet(_Command):
    """`/sync @bob [force]`, `/sync #team bob [force]`: re-negotiate the encryption."""

    contact: str | None = None
    group: str | None = None
    member: str | None = None
    force: bool = False


class SetReceipts(_Command):
    """`/receipts @bob on|off|default`, `/receipts #team ...`, `/receipts contacts|groups
    on|off` (the default for all, clearing each chat's own)."""

    on: bool | None
    contact: str | None = None
    group: str | None = None
    everyone: str | None = None


class SetFullDelete(_Command):
    """`/full_delete @bob|#team|all on|off|default`: a deletion for everyone that others
    send removes the message here (on) instead of marking it (off, the default)."""

    on: bool | None
    contact: str | None = None
    group: str | None = None


# the rest


class ShowStatus(_Command):
    """`/status`: the work still pending (agent commands, deliveries, continuations)."""


class Help(_Command):
    """`/help [topic]`."""

    topic: str | None = None


class Quit(_Command):
    """`/q`, `/quit`."""


class ShowUser(_Command):
    """`/u`, `/user`."""


class Profile(_Command):
    """`/p [name [full name]]`: show your profile, or change it (announced to your
    contacts and groups)."""

    display_name: str | None = None
    full_name: str = ""


Command = (
    NewInvitation
    | Connect
    | ListContacts
    | SendContactMessage
    | DeleteContact
    | CreateGroup
    | AddMember
    | JoinGroup
    | SendGroupMessage
    | ListMembers
    | ListGroups
    | LeaveGroup
    | RemoveMember
    | DeleteGroup
    | ShowStatus
    | Help
    | Quit
    | ShowUser
    | Tail
    | CreateAddress
    | ShowAddress
    | DeleteAddress
    | AcceptRequest
    | RejectRequest
    | AutoAccept
    | CreateGroupLink
    | ShowGroupLink
    | DeleteGroupLink
    | SetGroupLinkRole
    | SetMemberRole
    | Profile
    | GroupProfile
    | Info
    | SendToLast
    | EditMessage
    | DeleteMessage
    | ReplyMessage
    | ReactMessage
    | SetReceipts
    | SetFullDelete
    | SyncRatchet
)


# ---------------------------------------------------------------- help


@dataclass(frozen=True)
class CommandHelp:
    usage: str
    summary: str
    topic: str
    aliases: tuple[str, ...] = ()


COMMANDS: tuple[CommandHelp, ...] = (
    CommandHelp(
        "/c", "make a one-time invitation link for a new contact", "contacts", ("/connect",)
    ),
    CommandHelp("/c LINK", "connect to a contact through their invitation link", "contacts"),
    CommandHelp("/cs", "list your contacts", "contacts", ("/contacts",)),
    CommandHelp("@name TEXT", "send a message to a contact", "messages"),
    CommandHelp("/d @name", "delete a contact", "contacts", ("/delete",)),
    CommandHelp("/g name [full name]", "create a group", "groups", ("/group",)),
    CommandHelp(
        "/a group contact [role]",
        "(admin, owner) invite a contact to a group (role: admin, member (default) or "
        "observer, not above yours)",
        "groups",
        ("/add",),
    ),
    CommandHelp("/j group", "join a group you were invited to", "groups", ("/join",)),
    CommandHelp("#group TEXT", "send a message to a group", "messages"),
    CommandHelp("TEXT", "send a message to the last chat (contact or group)", "messages"),
    CommandHelp(
        "/ms group",
        "list the members of a group and how each is connected",
        "groups",
        ("/members",),
    ),
    CommandHelp("/gs", "list your groups", "groups", ("/groups",)),
    CommandHelp("/l group", "leave a group", "groups", ("/leave",)),
    CommandHelp(
        "/rm group member",
        "(admin, owner) remove a member whose role is below yours",
        "groups",
        ("/remove",),
    ),
    CommandHelp("/d #group", "(owners) delete a group for everyone", "groups"),
    CommandHelp(
        "/mr #group member role",
        "change a member's role (owner, admin, member or observer)",
        "groups",
    ),
    CommandHelp(
        "/gp #group name [full name]",
        "change a group's profile (owners)",
        "groups",
        ("/group_profile",),
    ),
    CommandHelp(
        "/create link #group [role]",
        "(admin, owner) make a link anyone can join the group through (role: member by "
        "default); you host whoever joins it",
        "links",
    ),
    CommandHelp("/show link #group", "show the group's link (with a QR code)", "links"),
    CommandHelp("/set link role #group role", "the role new members get through the link", "links"),
    CommandHelp("/delete link #group", "delete the group's link", "links"),
    CommandHelp("/ad", "make your long-term contact address", "address", ("/address",)),
    CommandHelp("/sa", "show your address (with a QR code)", "address", ("/show_address",)),
    CommandHelp("/da", "delete your address", "address", ("/delete_address",)),
    CommandHelp("/ac name", "accept a contact request", "address", ("/accept",)),
    CommandHelp("/rc name", "reject a contact request", "address", ("/reject",)),
    CommandHelp(
        "/auto_accept on|off [welcome]",
        "accept contact requests automatically, with an optional welcome message",
        "address",
    ),
    CommandHelp(
        "/tail [@contact|#group] [n]",
        f"show the last n messages (default {DEFAULT_TAIL}), of one chat or of all",
        "messages",
    ),
    CommandHelp("! @name (old) NEW", "edit your message that starts with old", "messages"),
    CommandHelp(
        "\\ @name TEXT", "delete your message that starts with TEXT, for everyone", "messages"
    ),
    CommandHelp(
        "\\\\ #group @member TEXT",
        "(admin, owner) delete a member's message for everyone",
        "messages",
    ),
    CommandHelp(
        "> @name (quoted) TEXT", "reply, quoting their message (>> quotes yours)", "messages"
    ),
    CommandHelp("+EMOJI @name TEXT", "react to a message (-EMOJI removes it)", "messages"),
    CommandHelp(
        "/receipts @name|#group|contacts|groups on|off|default",
        "delivery receipts (✓✓) for one chat, or for all contacts or groups",
        "messages",
    ),
    CommandHelp(
        "/full_delete @name|#group|all on|off|default",
        "others' deletions remove their messages (on) or mark them deleted (off, the default)",
        "messages",
    ),
    CommandHelp(
        "/sync @name|#group member",
        "re-negotiate the encryption with a contact or member (when messages cannot be read)",
        "messages",
    ),
    CommandHelp("/status", "show the pending work: retries, undelivered messages", "status"),
    CommandHelp("/u", "show your profile", "other", ("/user",)),
    CommandHelp(
        "/p [name [full name]]",
        "show your profile, or change it (your contacts and groups see the change)",
        "other",
        ("/profile",),
    ),
    CommandHelp(
        "/i @contact",
        "a contact's profile and connection (/i #group member: a member's)",
        "other",
        ("/info",),
    ),
    CommandHelp("/help [topic]", "this list, or the commands of one topic", "other", ("/h", "/?")),
    CommandHelp("/q", "quit", "other", ("/quit",)),
)

HELP_TOPICS: dict[str, str] = {
    "contacts": "Contacts: /c makes a one-time link; your contact pastes it after /c on their "
    "side. When both see 'NAME: contact is connected', @NAME TEXT sends messages.",
    "messages": "Messages: @contact TEXT or #group TEXT; TEXT alone goes to the last chat; "
    "/tail shows recent ones. Names with spaces are quoted: @'Bob Smith' hi.",
    "groups": "Groups: /g team creates #team; /a team bob invites bob, who accepts with /j team. "
    "Members then connect to each other by themselves; /ms team shows how far each has got.",
    "address": "Address: /ad makes a long-term address that many people can use (/c LINK "
    "on their side); each asks to connect: /ac NAME accepts, /rc NAME rejects, or "
    "/auto_accept on accepts everyone.",
    "links": "Group links: /create link #team makes a link anyone can join #team through; "
    "they join with /c LINK and connect to every member by themselves.",
    "status": "Status: /status lists what is still being retried (agent commands and message "
    "deliveries), with attempts, the last error and when the next try is due.",
    "other": "Other: /p shows your profile and /p NAME changes it, /i @NAME shows a "
    "contact, /help TOPIC explains a topic, /q quits.",
}


def help_lines(topic: str | None = None) -> list[str]:
    """The help text: every command, or the commands of one topic (ParseError if unknown)."""
    if topic is None:
        width = max(len(c.usage) for c in COMMANDS)
        lines = [f"{c.usage.ljust(width)}  {c.summary}" for c in COMMANDS]
        lines.append("topics: " + ", ".join(HELP_TOPICS) + " (/help TOPIC)")
        return lines
    t = _topic(topic)
    width = max(len(c.usage) for c in COMMANDS if c.topic == t)
    lines = [HELP_TOPICS[t]]
    for c in COMMANDS:
        if c.topic == t:
            also = f" (also {', '.join(c.aliases)})" if c.aliases else ""
            lines.append(f"  {c.usage.ljust(width)}  {c.summary}{also}")
    return lines


def _topic(topic: str) -> str:
    t = topic.strip().lower().lstrip("/")
    aliases = {
        "contact": "contacts",
        "group": "groups",
        "message": "messages",
        "msg": "messages",
        "link": "links",
        "addresses": "address",
    }
    t = aliases.get(t, t)
    if t not in HELP_TOPICS:
        raise ParseError(f"no help topic {topic!r}: try one of {', '.join(HELP_TOPICS)}")
    return t


# ---------------------------------------------------------------- parser


def quote_name(name: str) -> str:
    """A name as it would be typed: bare, or quoted when it has spaces or starts oddly."""
    if name and not any(ch.isspace() for ch in name) and name[0] not in "'\"@#":
        return name
    return f'"{name}"' if "'" in name else f"'{name}'"


class _Words:
    """Cursor over the arguments of a command: names (maybe quoted), words, the rest."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        """The next character that is not a space ("" at the end)."""
        self._skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def at_end(self) -> bool:
        self._skip_space()
        return self.pos >= len(self.text)

    def word(self, what: str, usage: str = "") -> str:
        """The next word (quotes allowed); ParseError naming `what` (and showing `usage`)
        if there is none."""
        self._skip_space()
        if self.pos >= len(self.text):
            raise ParseError(f"missing {what}: {usage}" if usage else f"missing {what}")
        start = self.text[self.pos]
        if start in "'\"":
            end = self.text.find(start, self.pos + 1)
            if end < 0:
                raise ParseError(f"{what}: the quote {start} is not closed")
            value = self.text[self.pos + 1 : end]
            self.pos = end + 1
            if self.pos < len(self.text) and not self.text[self.pos].isspace():
                raise ParseError(f"{what}: put a space after the closing quote")
            if not value.strip():
                raise ParseError(f"{what} is empty")
            return value
        end = self.pos
        while end < len(self.text) and not self.text[end].isspace():
            end += 1
        value = self.text[self.pos : end]
        self.pos = end
        return value

    def name(self, what: str, prefix: str, usage: str = "") -> str:
        """A name that may carry its prefix (`@` or `#`), which is dropped."""
        self._skip_space()
        if self.text.startswith(prefix, self.pos):
            self.pos += len(prefix)
            if self.pos >= len(self.text) or self.text[self.pos].isspace():
                raise ParseError(f"missing {what} after {prefix}")
        quoted = self.peek() in ("'", '"')
        value = self.word(what, usage)
        if not quoted and value.startswith(("@", "#")) and value[0] != prefix:
            raise ParseError(f"{what} {value}: expected {prefix}name or a bare name")
        return value

    def rest(self) -> str:
        self._skip_space()
        value = self.text[self.pos :].strip()
        self.pos = len(self.text)
        return value

    def done(self, usage: str) -> None:
        if not self.at_end():
            raise ParseError(f"unexpected {self.rest()!r}: usage {usage}")


_Handler = Callable[[_Words], Command]


def parse_command(line: str) -> Command:
    """The command typed on `line`; ParseError (with a hint) if it is not one."""
    text = line.strip()
    if not text:
        raise ParseError("empty command: /help lists the commands")
    if text[0] == "@":
        contact, message = _message(text, "@", "contact")
        return SendContactMessage(contact, message)
    if text[0] == "#":
        group, message = _message(text, "#", "group")
        return SendGroupMessage(group, message)
    if _ITEM_COMMAND.match(text):
        return _item_command(text)
    if text[0] != "/":
        return SendToLast(text)
    parts = text.split(maxsplit=1)
    head, args = parts[0], parts[1] if len(parts) > 1 else ""
    handler = _HANDLERS.get(head[1:].lower())
    if handler is None:
        raise ParseError(f"unknown command {head}: /help lists the commands")
    return handler(_Words(args))


# `! @bob ...`, `\\ #team ...`, `> @bob ...`, `+👍 @bob ...`: an item command only when a
# chat is named after the sign (other text starting so is plain text for the last chat)
_ITEM_COMMAND = re.compile(r"(!|\\\\?|>>?|[+-]\S+)\s+[@#]")


def _message(text: str, prefix: str, what: str) -> tuple[str, str]:
    words = _Words(text)
    target = words.name(what, prefix)
    message = words.rest()
    if not message:
        raise ParseError(f"nothing to send: {prefix}{quote_name(target)} TEXT")
    return target, message


def _connect(w: _Words) -> Command:
    if w.at_end():
        return NewInvitation()
    link = w.word("invitation link")
    w.done("/c [LINK]")
    return Connect(link)


def _no_args(command: Command, usage: str) -> _Handler:
    def handler(w: _Words) -> Command:
        w.done(usage)
        return command

    return handler


def _delete(w: _Words) -> Command:
    if _keyword(w, "link"):
        return DeleteGroupLink(_only_name(w, "group", "#", "/delete link #group"))
    if w.peek() == "@":
        contact = w.name("contact", "@")
        w.done("/d @contact")
        return DeleteContact(contact)
    if w.peek() == "#":
        group = w.name("group", "#")
        w.done("/d #group")
        return DeleteGroup(group)
    if w.at_end():
        raise ParseError("missing what to delete: /d @contact or /d #group")
    name = w.word("name")
    raise ParseError(
        f"say /d @{quote_name(name)} to delete a contact or /d #{quote_name(name)} "
        "to delete a group"
    )


def _create_group(w: _Words) -> Command:
    group = w.name("group name", "#")
    return CreateGroup(group, w.rest())


def _add_member(w: _Words) -> Command:
    usage = "/a group contact [admin|member|observer]"
    group = w.name("group", "#", usage)
    contact = w.name("contact", "@", usage)
    role = "member"
    if not w.at_end():
        role = w.word("role").lower()
        if role not in ROLES:
            raise ParseError(f"unknown role {role!r}: admin, member or observer")
    w.done(usage)
    return AddMember(group, contact, role)


def _one_name(make: Callable[[str], Command], what: str, prefix: str, usage: str) -> _Handler:
    """A command of one name and nothing more: `/j group`, `/ac name`."""

    def handler(w: _Words) -> Command:
        return make(_only_name(w, what, prefix, usage))

    return handler


def _remove_member(w: _Words) -> Command:
    usage = "/rm group member"
    group = w.name("group", "#", usage)
    member = w.name("member", "@", usage)
    w.done(usage)
    return RemoveMember(group, member)


def _keyword(w: _Words, word: str) -> bool:
    """Whether the next word is `word` (bare, any case); consumed if so."""
    w._skip_space()
    end = w.pos + len(word)
    rest = w.text[end:]
    if w.text[w.pos : end].lower() == word and (not rest or rest[0].isspace()):
        w.pos = end
        return True
    return False


def _only_name(w: _Words, what: str, prefix: str, usage: str) -> str:
    name = w.name(what, prefix, usage)
    w.done(usage)
    return name


def _role(word: str, roles: tuple[str, ...]) -> str:
    role = word.lower()
    if role not in roles:
        raise ParseError(f"unknown role {word!r}: {', '.join(roles[:-1])} or {roles[-1]}")
    return role


MEMBER_ROLES = ("owner", "admin", "member", "observer")


def _create(w: _Words) -> Command:
    usage = "/create link #group [role]"
    if not _keyword(w, "link"):
        raise ParseError(f"usage: {usage}")
    group = w.name("group", "#", usage)
    role = "member"
    if not w.at_end():
        role = _role(w.word("role"), ROLES)
    w.done(usage)
    return CreateGroupLink(group, role)


def _show(w: _Words) -> Command:
    if not _keyword(w, "link"):
        raise ParseError("usage: /show link #group (/sa shows your address)")
    return ShowGroupLink(_only_name(w, "group", "#", "/show link #group"))


def _set(w: _Words) -> Command:
    usage = "/set link role #group role"
    if not (_keyword(w, "link") and _keyword(w, "role")):
        raise ParseError(f"usage: {usage}")
    group = w.name("group", "#", usage)
    role = _role(w.word("role", usage), ROLES)
    w.done(usage)
    return SetGroupLinkRole(group, role)


def _member_role(w: _Words) -> Command:
    usage = "/mr #group member role"
    group = w.name("group", "#", usage)
    member = w.name("member", "@", usage)
    role = _role(w.word("role", usage), MEMBER_ROLES)
    w.done(usage)
    return SetMemberRole(group, member, role)


def _auto_accept(w: _Words) -> Command:
    usage = "/auto_accept on|off [welcome message]"
    word = w.word("on or off", usage).lower()
    if word not in ("on", "off"):
        raise ParseError(f"say on or off, not {word!r}: {usage}")
    welcome = w.rest()
    if word == "off" and welcome:
        raise ParseError("a welcome message goes with /auto_accept on")
    return AutoAccept(word == "on", welcome)


def _profile(w: _Words) -> Command:
    if w.at_end():
        return Profile()
    name = w.word("display name")
    return Profile(name, w.rest())


def _group_profile(w: _Words) -> Command:
    usage = "/gp #group name [full name]"
    group = w.name("group", "#", usage)
    if w.at_end():
        raise ParseError(f"missing the new name: {usage}")
    name = w.name("group name", "#")
    return GroupProfile(group, name, w.rest())


def _info(w: _Words) -> Command:
    usage = "/i @contact or /i #group member"
    if w.at_end():
        raise ParseError(f"missing name: {usage}")
    if w.peek() == "#":
        group = w.name("group", "#")
        return Info(_only_name(w, "member", "@", usage), group)
    return Info(_only_name(w, "contact", "@", usage))


def _help(w: _Words) -> Command:
    if w.at_end():
        return Help()
    topic = _topic(w.rest())
    return Help(topic)


def _count(word: str) -> int:
    try:
        n = int(word)
    except ValueError:
        raise ParseError(f"not a number of messages: {word!r}") from None
    if not 1 <= n <= MAX_TAIL:
        raise ParseError(f"the number of messages must be from 1 to {MAX_TAIL}")
    return n


def _tail(w: _Words) -> Command:
    usage = "/tail [@contact|#group] [n]"
    if w.at_end():
        return Tail()
    contact, group = _contact_or_group(w)
    name = None
    if contact is None and group is None:
        word = w.word("chat")
        if word.isascii() and word.isdigit():
            w.done(usage)
            return Tail(_count(word))
        name = word
    count = DEFAULT_TAIL
    if not w.at_end():
        count = _count(w.word("count"))
    w.done(usage)
    return Tail(count, contact, group, name)


def _contact_or_group(w: _Words) -> tuple[str | None, str | None]:
    """`@name` or `#group`, if one comes next: (contact, group); else (None, None)."""
    first = w.peek()
    if first == "@":
        return w.name("contact", "@"), None
    if first == "#":
        return None, w.name("group", "#")
    return None, None


def _chat(w: _Words, usage: str) -> tuple[str | None, str | None, str | None]:
    """`@name` or `#group [@member]`: (contact, group, member)."""
    contact, group = _contact_or_group(w)
    if contact is None and group is None:
        raise ParseError(f"name the chat with @contact or #group: {usage}")
    member = w.name("member", "@") if group is not None and w.peek() == "@" else None
    return contact, group, member


def _parenthesized(w: _Words) -> str:
    """`(text)` if it comes next ("" if not)."""
    if w.peek() != "(":
        return ""
    end = w.text.find(")", w.pos)
    if end < 0:
        raise ParseError("the ( is not closed")
    value = w.text[w.pos + 1 : end]
    w.pos = end + 1
    return value


def _item_command(text: str) -> Command:
    """`! ...` edit, `\\ ...` delete, `> ...` reply, `+EMOJI ...`/`-EMOJI ...` react."""
    if text.startswith("!"):
        usage = "! @name (old) NEW"
        w = _Words(text[1:])
        contact, group, member = _chat(w, usage)
        if member:
            raise ParseError(f"you can edit only your own messages: {usage}")
        old = _parenthesized(w)
        new = w.rest()
        if not new:
            raise ParseError(f"the new text is empty: {usage}")
        return EditMessage(new, old, contact, group)
    if text.startswith("\\"):
        moderate = text.startswith("\\\\")
        usage = "\\\\ #group @member TEXT" if moderate else "\\ @name TEXT"
        w = _Words(text[2 if moderate else 1 :])
        contact, group, member = _chat(w, usage)
        if moderate and member is None:
            raise ParseError(f"name the member: {usage}")
        if not moderate and member is not None:
            raise ParseError("to delete a member's message: \\\\ #group @member TEXT")
        what = _parenthesized(w) or w.rest()
        if not what:
            raise ParseError(f"which message? {usage}")
        return DeleteMessage(what, contact, group, member)
    if text.startswith(">"):
        own = text.startswith(">>")
        usage = "> @name (quoted) TEXT"
        w = _Words(text[2 if own else 1 :])
        contact, group, member = _chat(w, usage)
        quoted = _parenthesized(w)
        reply = w.rest()
        if not reply:
            raise ParseError(f"nothing to send: {usage}")
        return ReplyMessage(quoted, reply, contact, group, member, own)
    usage = "+EMOJI @name TEXT"
    head, _, rest = text.partition(" ")
    emoji = head[1:]
    if not emoji:
        raise ParseError(f"which reaction? {usage}")
    w = _Words(rest)
    contact, group, member = _chat(w, usage)
    return ReactMessage(
        emoji, head[0] == "+", _parenthesized(w) or w.rest(), contact, group, member
    )


def _sync(w: _Words) -> Command:
    usage = "/sync @name [force] or /sync #group member [force]"
    contact, group = _contact_or_group(w)
    if contact is None and group is None:
        raise ParseError(f"usage: {usage}")
    member = w.name("member", "@") if group is not None else None
    force = False
    if not w.at_end():
        if w.word("force") != "force":
            raise ParseError(f"usage: {usage}")
        force = True
    w.done(usage)
    return SyncRatchet(contact, group, member, force)


def _receipts(w: _Words) -> Command:
    usage = "/receipts @name|#group|contacts|groups on|off|default"
    contact, group = _contact_or_group(w)
    everyone = None
    if contact is None and group is None:
        everyone = w.word("chat")
        if everyone not in ("contacts", "groups"):
            raise ParseError(f"usage: {usage}")
    value = w.word("on, off or default")
    w.done(usage)
    if value not in ("on", "off", "default") or (everyone and value == "default"):
        raise ParseError(f"usage: {usage}")
    on = None if value == "default" else value == "on"
    return SetReceipts(on, contact, group, everyone)


def _full_delete(w: _Words) -> Command:
    usage = "/full_delete @name|#group|all on|off|default"
    contact, group = _contact_or_group(w)
    if contact is None and group is None and w.word("chat") != "all":
        raise ParseError(f"usage: {usage}")
    value = w.word("on, off or default")
    w.done(usage)
    if value not in ("on", "off", "default") or (not (contact or group) and value == "default"):
        raise ParseError(f"usage: {usage}")
    return SetFullDelete(None if value == "default" else value == "on", contact, group)


_HANDLERS: dict[str, _Handler] = {
    "c": _connect,
    "connect": _connect,
    "cs": _no_args(ListContacts(), "/cs"),
    "contacts": _no_args(ListContacts(), "/contacts"),
    "d": _delete,
    "delete": _delete,
    "g": _create_group,
    "group": _create_group,
    "a": _add_member,
    "add": _add_member,
    "j": _one_name(JoinGroup, "group", "#", "/j group"),
    "join": _one_name(JoinGroup, "group", "#", "/j group"),
    "ms": _one_name(ListMembers, "group", "#", "/ms group"),
    "members": _one_name(ListMembers, "group", "#", "/ms group"),
    "gs": _no_args(ListGroups(), "/gs"),
    "groups": _no_args(ListGroups(), "/gs"),
    "l": _one_name(LeaveGroup, "group", "#", "/l group"),
    "leave": _one_name(LeaveGroup, "group", "#", "/l group"),
    "rm": _remove_member,
    "remove": _remove_member,
    "status": _no_args(ShowStatus(), "/status"),
    "help": _help,
    "h": _help,
    "?": _help,
    "q": _no_args(Quit(), "/q"),
    "quit": _no_args(Quit(), "/q"),
    "u": _no_args(ShowUser(), "/u"),
    "user": _no_args(ShowUser(), "/u"),
    "tail": _tail,
    "ad": _no_args(CreateAddress(), "/ad"),
    "address": _no_args(CreateAddress(), "/ad"),
    "sa": _no_args(ShowAddress(), "/sa"),
    "show_address": _no_args(ShowAddress(), "/sa"),
    "da": _no_args(DeleteAddress(), "/da"),
    "delete_address": _no_args(DeleteAddress(), "/da"),
    "ac": _one_name(AcceptRequest, "name", "@", "/ac name"),
    "accept": _one_name(AcceptRequest, "name", "@", "/ac name"),
    "rc": _one_name(RejectRequest, "name", "@", "/rc name"),
    "reject": _one_name(RejectRequest, "name", "@", "/rc name"),
    "auto_accept": _auto_accept,
    "create": _create,
    "show": _show,
    "set": _set,
    "mr": _member_role,
    "member_role": _member_role,
    "p": _profile,
    "profile": _profile,
    "gp": _group_profile,
    "group_profile": _group_profile,
    "i": _info,
    "info": _info,
    "receipts": _receipts,
    "full_delete": _full_delete,
    "sync": _sync,
}
