"""The chat's typed commands, in simplex-chat style: a pure parser from a line to a value.

`parse_command(line)` returns one of the command structs below or raises `ParseError`
with a message a person can act on; it does no I/O and knows nothing about the state of
the chat, so a name that might be a contact or a group (as in `/tail bob`) is passed on
as such for the front end to resolve.

Names are written bare (`bob`, `team`) or with their prefix (`@bob`, `#team`); a name
with spaces is quoted: `@'Bob Smith' hi`, `/a team "Bob Smith"`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgspec

ROLES = ("admin", "member", "observer")
DEFAULT_TAIL = 10
MAX_TAIL = 1000


class ParseError(ValueError):
    """The line is not a valid command; the message says what is wrong and how to fix it."""


# ---------------------------------------------------------------- commands


class NewInvitation(msgspec.Struct, frozen=True, tag="newInvitation"):
    """`/c`: make a one-time invitation link for a new contact."""


class Connect(msgspec.Struct, frozen=True, tag="connect"):
    """`/c LINK`: connect to a contact through their invitation link."""

    link: str


class ListContacts(msgspec.Struct, frozen=True, tag="listContacts"):
    """`/cs`, `/contacts`."""


class SendContactMessage(msgspec.Struct, frozen=True, tag="sendContactMessage"):
    """`@name text`."""

    contact: str
    text: str


class DeleteContact(msgspec.Struct, frozen=True, tag="deleteContact"):
    """`/d @name`."""

    contact: str


class CreateGroup(msgspec.Struct, frozen=True, tag="createGroup"):
    """`/g name [full name]`."""

    group: str
    full_name: str = ""


class AddMember(msgspec.Struct, frozen=True, tag="addMember"):
    """`/a group contact [role]`."""

    group: str
    contact: str
    role: str = "member"


class JoinGroup(msgspec.Struct, frozen=True, tag="joinGroup"):
    """`/j group`."""

    group: str


class SendGroupMessage(msgspec.Struct, frozen=True, tag="sendGroupMessage"):
    """`#group text`."""

    group: str
    text: str


class ListMembers(msgspec.Struct, frozen=True, tag="listMembers"):
    """`/ms group`: the members and how their connections are doing."""

    group: str


class ListGroups(msgspec.Struct, frozen=True, tag="listGroups"):
    """`/gs`, `/groups`."""


class LeaveGroup(msgspec.Struct, frozen=True, tag="leaveGroup"):
    """`/l group`."""

    group: str


class RemoveMember(msgspec.Struct, frozen=True, tag="removeMember"):
    """`/rm group member`."""

    group: str
    member: str


class DeleteGroup(msgspec.Struct, frozen=True, tag="deleteGroup"):
    """`/d #group`."""

    group: str


class ShowStatus(msgspec.Struct, frozen=True, tag="showStatus"):
    """`/status`: the work still pending (agent commands, deliveries, continuations)."""


class Help(msgspec.Struct, frozen=True, tag="help"):
    """`/help [topic]`."""

    topic: str | None = None


class Quit(msgspec.Struct, frozen=True, tag="quit"):
    """`/q`, `/quit`."""


class ShowUser(msgspec.Struct, frozen=True, tag="showUser"):
    """`/u`, `/user`."""


class Tail(msgspec.Struct, frozen=True, tag="tail"):
    """`/tail [@contact|#group|name] [n]`: the last n messages (all chats if none given).

    At most one of `contact`, `group` and `name` is set; `name` is a bare name that may
    be a contact or a group, for the front end to resolve."""

    count: int = DEFAULT_TAIL
    contact: str | None = None
    group: str | None = None
    name: str | None = None


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
        "invite a contact to a group (role: admin, member (default) or observer)",
        "groups",
        ("/add",),
    ),
    CommandHelp("/j group", "join a group you were invited to", "groups", ("/join",)),
    CommandHelp("#group TEXT", "send a message to a group", "messages"),
    CommandHelp(
        "/ms group",
        "list the members of a group and how each is connected",
        "groups",
        ("/members",),
    ),
    CommandHelp("/gs", "list your groups", "groups", ("/groups",)),
    CommandHelp("/l group", "leave a group", "groups", ("/leave",)),
    CommandHelp(
        "/rm group member", "remove a member from a group you created", "groups", ("/remove",)
    ),
    CommandHelp("/d #group", "delete a group you created (for everyone)", "groups"),
    CommandHelp(
        "/tail [@contact|#group] [n]",
        f"show the last n messages (default {DEFAULT_TAIL}), of one chat or of all",
        "messages",
    ),
    CommandHelp("/status", "show the pending work: retries, undelivered messages", "status"),
    CommandHelp("/u", "show your profile", "other", ("/user",)),
    CommandHelp("/help [topic]", "this list, or the commands of one topic", "other", ("/h", "/?")),
    CommandHelp("/q", "quit", "other", ("/quit",)),
)

HELP_TOPICS: dict[str, str] = {
    "contacts": "Contacts: /c makes a one-time link; your contact pastes it after /c on their "
    "side. When both see 'NAME: contact is connected', @NAME TEXT sends messages.",
    "messages": "Messages: @contact TEXT or #group TEXT; /tail shows recent ones. Names with "
    "spaces are quoted: @'Bob Smith' hi.",
    "groups": "Groups: /g team creates #team; /a team bob invites bob, who accepts with /j team. "
    "Members then connect to each other by themselves; /ms team shows how far each has got.",
    "status": "Status: /status lists what is still being retried (agent commands and message "
    "deliveries), with attempts, the last error and when the next try is due.",
    "other": "Other: /u shows your profile, /help TOPIC explains a topic, /q quits.",
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
    aliases = {"contact": "contacts", "group": "groups", "message": "messages", "msg": "messages"}
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

    def word(self, what: str) -> str:
        """The next word (quotes allowed); ParseError naming `what` if there is none."""
        self._skip_space()
        if self.pos >= len(self.text):
            raise ParseError(f"missing {what}")
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

    def name(self, what: str, prefix: str) -> str:
        """A name that may carry its prefix (`@` or `#`), which is dropped."""
        self._skip_space()
        if self.text.startswith(prefix, self.pos):
            self.pos += len(prefix)
            if self.pos >= len(self.text) or self.text[self.pos].isspace():
                raise ParseError(f"missing {what} after {prefix}")
        quoted = self.peek() in ("'", '"')
        value = self.word(what)
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
    if text[0] != "/":
        raise ParseError(
            "not a command: send a message with @contact TEXT or #group TEXT; /help lists commands"
        )
    parts = text.split(maxsplit=1)
    head, args = parts[0], parts[1] if len(parts) > 1 else ""
    handler = _HANDLERS.get(head[1:].lower())
    if handler is None:
        raise ParseError(f"unknown command {head}: /help lists the commands")
    return handler(_Words(args))


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
    if w.at_end():
        raise ParseError(f"missing group: {usage}")
    group = w.name("group", "#")
    if w.at_end():
        raise ParseError(f"missing contact: {usage}")
    contact = w.name("contact", "@")
    role = "member"
    if not w.at_end():
        role = w.word("role").lower()
        if role not in ROLES:
            raise ParseError(f"unknown role {role!r}: admin, member or observer")
    w.done(usage)
    return AddMember(group, contact, role)


def _one_group(make: type[JoinGroup | ListMembers | LeaveGroup], usage: str) -> _Handler:
    def handler(w: _Words) -> Command:
        if w.at_end():
            raise ParseError(f"missing group: {usage}")
        group = w.name("group", "#")
        w.done(usage)
        return make(group)

    return handler


def _remove_member(w: _Words) -> Command:
    usage = "/rm group member"
    if w.at_end():
        raise ParseError(f"missing group: {usage}")
    group = w.name("group", "#")
    if w.at_end():
        raise ParseError(f"missing member: {usage}")
    member = w.name("member", "@")
    w.done(usage)
    return RemoveMember(group, member)


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
    first = w.peek()
    contact = group = name = None
    if first == "@":
        contact = w.name("contact", "@")
    elif first == "#":
        group = w.name("group", "#")
    else:
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
    "j": _one_group(JoinGroup, "/j group"),
    "join": _one_group(JoinGroup, "/j group"),
    "ms": _one_group(ListMembers, "/ms group"),
    "members": _one_group(ListMembers, "/ms group"),
    "gs": _no_args(ListGroups(), "/gs"),
    "groups": _no_args(ListGroups(), "/gs"),
    "l": _one_group(LeaveGroup, "/l group"),
    "leave": _one_group(LeaveGroup, "/l group"),
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
}
