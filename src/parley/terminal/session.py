"""Running typed commands against the chat and saying what happened, in plain words.

A `ChatSession` is shared by the interactive terminal and the headless, line-based
client: both hand it lines, and it answers through a `Printer` (a prompt_toolkit screen,
or plain lines on stdout). It also renders the chat's events when the front end passes
them on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Protocol

from rich.table import Table

from parley.agent.agent import AgentError
from parley.chat import commands as cmd
from parley.chat import events as cev
from parley.chat.controller import ChatController, ChatError
from parley.loops import failure_logged
from parley.terminal import render

log = logging.getLogger(__name__)

INVITATION_PREFIX = "pass this invitation link to your contact: "
INVITATION_WAIT = 10.0  # seconds /c waits for its link before the event has to bring it


class Printer(Protocol):
    """Where a session's output goes."""

    def line(self, text: str, style: str = "") -> None:
        """One line; `style` is "", "error", "event", "message" or "dim"."""

    def table(self, table: Table, plain: Sequence[str]) -> None:
        """A table, or its `plain` lines where tables cannot be drawn."""

    def qr(self, text: str) -> None:
        """A QR code of `text`, if the output is a terminal (else nothing)."""


@dataclass(eq=False)
class ChatSession:
    """Parses and runs command lines; renders events.

    `sees_events`: whether this front end shows the chat's events (then it does not repeat
    what an event will say, such as a deletion). `verbose`: show routine events too (every
    message reported sent) and confirm each message sent with a line.
    """

    chat: ChatController
    printer: Printer
    _: KW_ONLY
    sees_events: bool = True
    verbose: bool = False
    clock: Callable[[], float] = time.time
    # the last chat written to or heard from ("@" or "#", name): where plain text goes
    last_chat: tuple[str, str] | None = field(init=False, default=None)
    _inviting: int = field(init=False, default=0)  # /c commands waiting for their link
    # invitations whose link /c printed, and those whose link comes as an event
    _links_shown: set[int] = field(init=False, default_factory=set)
    _links_late: set[int] = field(init=False, default_factory=set)
    # /ad and /create link commands waiting for their link, and the links they printed
    _making_links: int = field(init=False, default=0)
    _links_printed: set[str] = field(init=False, default_factory=set)

    # ------------------------------------------------------------ lines

    async def handle_line(self, line: str) -> bool:
        """Run one typed line; True when the user asked to quit. Never raises for bad input
        or a refused command: those print one error line."""
        if not line.strip():
            return False
        try:
            command = cmd.parse_command(line)
        except cmd.ParseError as e:
            self.printer.line(f"error: {e}", "error")
            return False
        return await self.execute(command)

    async def execute(self, command: cmd.Command) -> bool:
        try:
            return await self._execute(command)
        except (ChatError, cmd.ParseError, AgentError) as e:
            self.printer.line(f"error: {e}", "error")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug: say so in one line, keep the session going
            log.debug("command %r failed", command, exc_info=True)
            self.printer.line(f"error: {type(e).__name__}: {e}", "error")
        return False

    async def _execute(self, command: cmd.Command) -> bool:
        out = self.printer.line
        match command:
            case cmd.Quit():
                return True
            case cmd.Help(topic):
                for text in cmd.help_lines(topic):
                    out(text)
            case cmd.ShowUser():
                user = await self.chat.active_user()
                if user is None:
                    out("no user profile yet")
                else:
                    full = f" ({user.full_name})" if user.full_name else ""
                    out(f"you are {user.display_name}{full}")
            case cmd.NewInvitation():
                await self._new_invitation()
            case cmd.Connect(link):
                await self.chat.connect(link)
                out("connecting: you will see 'NAME: contact is connected' when it is done")
            case cmd.ListContacts():
                contacts = [render.contact_line(c) for c in await self.chat.contacts()]
                self._list(contacts, "no contacts yet: /c makes an invitation link")
            case cmd.SendContactMessage(contact, text):
                await self._send("@", contact, text)
            case cmd.SendGroupMessage(group, text):
                await self._send("#", group, text)
            case cmd.SendToLast(text):
                if self.last_chat is None:
                    raise ChatError(
                        "no chat to send to yet: write @contact TEXT or #group TEXT first "
                        "(/help lists the commands)"
                    )
                await self._send(*self.last_chat, text)
            case cmd.DeleteContact(contact):
                await self.chat.delete_contact(contact)
                self._unless_events(f"{contact}: contact deleted")
            case cmd.CreateGroup(name, full_name):
                created = await self.chat.create_group(name, full_name)
                q = cmd.quote_name(created.name)
                out(f"#{created.name}: group created; to invite a contact: /a {q} CONTACT")
            case cmd.AddMember(group, contact, role):
                member = await self.chat.add_member(group, contact, role)
                out(f"#{group}: inviting {member.name} as {member.role}")
            case cmd.JoinGroup(group):
                joined = await self.chat.join_group(group)
                out(f"#{joined.name}: joining the group")
            case cmd.ListMembers(group):
                await self._members(group)
            case cmd.ListGroups():
                groups = [render.group_line(g) for g in await self.chat.groups()]
                self._list(groups, "no groups yet: /g NAME creates one")
            case cmd.LeaveGroup(group):
                await self.chat.leave_group(group)
                out(f"#{group}: you left the group")
            case cmd.RemoveMember(group, member):
                await self.chat.remove_member(group, member)
                self._unless_events(f"#{group}: you removed {member} from the group")
            case cmd.DeleteGroup(group):
                await self.chat.delete_group(group)
                self._unless_events(f"#{group}: you deleted the group")
            case cmd.EditMessage(text, old, contact, group):
                item = await self.chat.find_item(contact=contact, group=group, text=old, own=True)
                updated = await self.chat.update_item(item.item_id, text)
                if self.verbose:
                    out(render.item_line(updated), "message")
            case cmd.DeleteMessage(text, contact, group, member):
                if member is None:
                    item = await self.chat.find_item(
                        contact=contact, group=group, text=text, own=True
                    )
                    await self.chat.delete_item(item.item_id, broadcast=True)
                else:
                    item = await self.chat.find_item(
                        group=group, text=text, own=False, author=member
                    )
                    await self.chat.moderate_item(item.item_id)
                out(f"message deleted: {item.text}")
            case cmd.ReplyMessage(quoted, text, contact, group, member, own):
                item = await self.chat.find_item(
                    contact=contact, group=group, text=quoted, own=own, author=member
                )
                if contact is not None:
                    sent = await self.chat.send_contact_message(contact, text, item.item_id)
                else:
                    assert group is not None
                    sent = await self.chat.send_group_message(group, text, item.item_id)
                if self.verbose:
                    out(render.item_line(sent), "message")
            case cmd.ReactMessage(emoji, add, text, contact, group, member):
                item = await self.chat.find_item(
                    contact=contact,
                    group=group,
                    text=text,
                    own=False if member else None,
                    author=member,
                )
                await self.chat.react(item.item_id, emoji, add)
                if self.verbose:
                    out(f"{'added' if add else 'removed'} {emoji}: {item.text}")
            case cmd.SyncRatchet(contact, group, member, force):
                state = await self.chat.sync_ratchet(
                    contact=contact, group=group, member=member, force=force
                )
                who = f"@{contact}" if contact else f"#{group} {member}"
                out(f"{who}: re-negotiating encryption ({state})")
            case cmd.SetReceipts(on, contact, group, everyone):
                await self.chat.set_receipts(on, contact=contact, group=group, everyone=everyone)
                state = "default" if on is None else ("on" if on else "off")
                out(f"delivery receipts {state} for {contact or group or everyone}")
            case cmd.SetFullDelete(on, contact, group):
                await self.chat.set_full_delete(on, contact=contact, group=group)
                state = "default" if on is None else ("on" if on else "off")
                where = f"@{contact}" if contact else f"#{group}" if group else "all chats"
                out(f"full deletion {state} for {where}")
            case cmd.ShowStatus():
                await self._status()
            case cmd.Tail():
                await self._tail(command)
            case _:
                await self._execute_more(command)
        return False

    async def _execute_more(self, command: cmd.Command) -> None:
        """Addresses, contact requests, group links, roles and profiles."""
        out = self.printer.line
        match command:
            case cmd.CreateAddress():
                link = await self._make_link(self.chat.create_address(INVITATION_WAIT))
                self._show_address(link)
            case cmd.ShowAddress():
                address = await self.chat.show_address()
                if address is None:
                    out("you have no chat address: /ad makes one")
                    return
                self._show_address(address.link)
                out(render.auto_accept_line(address))
            case cmd.DeleteAddress():
                await self.chat.delete_address()
                self._unless_events("your chat address is deleted")
            case cmd.AcceptRequest(name):
                request = await self.chat.contact_request_named(name)
                contact = await self.chat.accept_contact_request(request.request_id)
                self._unless_events(f"{contact.name}: accepting contact request...")
            case cmd.RejectRequest(name):
                request = await self.chat.contact_request_named(name)
                await self.chat.reject_contact_request(request.request_id)
                self._unless_events(f"{request.name}: contact request rejected")
            case cmd.AutoAccept(on, welcome):
                address = await self.chat.set_auto_accept(on, welcome or None)
                out(render.auto_accept_line(address))
            case cmd.CreateGroupLink(group, role):
                link = await self._make_link(
                    self.chat.create_group_link(group, role, INVITATION_WAIT)
                )
                view = await self.chat.group_link(group)
                if view is None:  # (deleted meanwhile)
                    out(f"#{group}: group link: {link}")
                    return
                self._show_group_link(view)
            case cmd.ShowGroupLink(group):
                view = await self.chat.group_link(group)
                if view is None:
                    q = cmd.quote_name(group)
                    out(f"#{group} has no link: /create link #{q} makes one")
                    return
                self._show_group_link(view)
            case cmd.DeleteGroupLink(group):
                await self.chat.delete_group_link(group)
                self._unless_events(f"#{group}: group link deleted")
            case cmd.SetGroupLinkRole(group, role):
                view = await self.chat.set_group_link_role(group, role)
                out(f"#{view.group.name}: new members join through the link as {view.role}")
            case cmd.SetMemberRole(group, member, role):
                before = {m.name: m.role for m in await self.chat.members(group)}.get(member)
                updated = await self.chat.set_member_role(group, member, role)
                if before == role:
                    out(f"#{group}: {updated.name} is {role} already")
                else:
                    self._unless_events(
                        f"#{group}: you changed the role of {updated.name} to {role}"
                    )
            case cmd.Profile(None):
                await self._show_profile()
            case cmd.Profile(name, full_name):
                assert name is not None
                old_user = await self.chat.active_user()
                user = await self.chat.update_profile(name, full_name)
                if user == old_user:
                    out("your profile is unchanged")
                else:
                    self._unless_events(cev.describe(cev.UserProfileUpdated(user, user)))
            case cmd.GroupProfile(group, name, full_name):
                before_group = next((g for g in await self.chat.groups() if g.name == group), None)
                after = await self.chat.update_group_profile(group, name, full_name)
                if before_group is not None and after == before_group:
                    out(f"#{group}: the group profile is unchanged")
                else:
                    self._unless_events(
                        cev.describe(cev.GroupUpdated(before_group or after, after, None))
                    )
                self._renamed("#", group, after.name)
            case cmd.Info(name, None):
                found = next((c for c in await self.chat.contacts() if c.name == name), None)
                if found is None:
                    raise ChatError(f"no contact {name}")
                for text in render.contact_info_lines(found):
                    out(text)
            case cmd.Info(name, group):
                assert group is not None
                members = await self.chat.members(group)
                seen = next((m for m in members if m.name == name), None)
                if seen is None:
                    raise ChatError(f"#{group}: no member {name}")
                for text in render.member_info_lines(group, seen):
                    out(text)

    def _unless_events(self, text: str) -> None:
        """Say what a command did, unless this front end shows the event that says it."""
        if not self.sees_events:
            self.printer.line(text)

    def _list(self, lines: list[str], empty: str) -> None:
        """A listing, one line each, or what to do when there is nothing to list."""
        for text in lines or [empty]:
            self.printer.line(text)

    async def _send(self, prefix: str, name: str, text: str) -> None:
        if prefix == "@":
            item = await self.chat.send_contact_message(name, text)
        else:
            item = await self.chat.send_group_message(name, text)
        self.last_chat = (prefix, name)
        if self.verbose:
            self.printer.line(render.item_line(item), "message")

    async def _show_profile(self) -> None:
        user = await self.chat.active_user()
        if user is None:
            self.printer.line("no user profile yet")
            return
        full = f" ({user.full_name})" if user.full_name else ""
        self.printer.line(f"you are {user.display_name}{full}")
        self.printer.line("(/p NAME [FULL NAME] changes it)", "dim")

    async def _make_link(self, making: Awaitable[str]) -> str:
        """Run /ad or /create link: its event is not shown while it waits (it prints)."""
        self._making_links += 1
        try:
            return await making
        finally:
            self._making_links -= 1

    def _show_address(self, link: str) -> None:
        self._links_printed.add(link)
        self.printer.line(f"your chat address: {link}")
        self.printer.qr(link)
        self.printer.line(
            "(anyone can connect to you with /c LINK; /sa shows it, /da deletes it)", "dim"
        )

    def _show_group_link(self, view: cev.GroupLinkView) -> None:
        q = cmd.quote_name(view.group.name)
        self._links_printed.add(view.link)
        self.printer.line(
            f"#{view.group.name}: group link (new members join as {view.role}): {view.link}"
        )
        self.printer.qr(view.link)
        self.printer.line(
            f"(anyone can join #{q} with /c LINK; /delete link #{q} deletes it)", "dim"
        )

    def _renamed(self, prefix: str, before: str, after: str) -> None:
        if self.last_chat == (prefix, before):
            self.last_chat = (prefix, after)

    def _track(self, event: cev.ChatEvent) -> None:
        """Keep the last chat up to date: a message received, a chat renamed or gone."""
        match event:
            case cev.NewChatItem(item) if item.direction == "rcv":
                if item.group is not None:
                    self.last_chat = ("#", item.group.name)
                elif item.contact is not None:
                    self.last_chat = ("@", item.contact.name)
            case cev.ContactUpdated(before, after):
                self._renamed("@", before.name, after.name)
            case cev.GroupUpdated(before, after):
                self._renamed("#", before.name, after.name)
            case cev.ContactDeleted(contact) if self.last_chat == ("@", contact.name):
                self.last_chat = None

    async def _new_invitation(self) -> None:
        self._inviting += 1
        try:
            connection_id, link = await self.chat.create_invitation(INVITATION_WAIT)
        finally:
            self._inviting -= 1
        if link is None:
            self._links_late.add(connection_id)
            self.printer.line(
                "the relay is not reachable yet: the link will be shown when it is made"
                + ("" if self.sees_events else " (/c again to retry)")
            )
            return
        self._links_shown.add(connection_id)
        self._show_link(link)

    def _show_link(self, link: str) -> None:
        self.printer.line(INVITATION_PREFIX + link)
        self.printer.qr(link)
        self.printer.line("(they connect with /c LINK; the link works once)", "dim")

    async def _descriptions(self, conn_ids: set[str]) -> dict[str, str]:
        return {c: await self.chat.describe_agent_connection(c) for c in sorted(conn_ids)}

    async def _members(self, group: str) -> None:
        members = await self.chat.members(group)
        report, _ = await self.chat.status()
        work = render.pending_work(report)
        descriptions = await self._descriptions({w.conn_id for w in work})
        for text in render.member_lines(group, members, work, descriptions, self.clock()):
            self.printer.line(text)

    async def _status(self) -> None:
        report, continuations = await self.chat.status()
        conn_ids = (
            {c.conn_id for c in report.commands}
            | {d.conn_id for d in report.deliveries}
            | {s.conn_id for s in report.subscriptions}
        )
        descriptions = await self._descriptions(conn_ids)
        rows = render.status_rows(report, continuations, descriptions, self.clock())
        net = render.net_line(report, self.clock())
        if net is not None:
            self.printer.line(net)
        if not rows:
            self.printer.line(render.NOTHING_PENDING)
            return
        self.printer.table(render.status_table(rows), render.status_lines(rows))

    async def _tail(self, tail: cmd.Tail) -> None:
        contact, group = tail.contact, tail.group
        if tail.name is not None:
            contact, group = await self._resolve(tail.name)
        items = await self.chat.chat_items(contact=contact, group=group, count=tail.count)
        if not items:
            self.printer.line("no messages yet")
        for item in items:
            self.printer.line(render.item_line(item, with_time=True), "message")

    async def _resolve(self, name: str) -> tuple[str | None, str | None]:
        """A bare name: the contact or the group it names (an error if both or neither)."""
        is_contact = any(c.name == name for c in await self.chat.contacts())
        is_group = any(g.name == name for g in await self.chat.groups())
        q = cmd.quote_name(name)
        if is_contact and is_group:
            raise ChatError(f"{name} is a contact and a group: say @{q} or #{q}")
        if not (is_contact or is_group):
            raise ChatError(f"no contact or group {name}")
        return (name, None) if is_contact else (None, name)

    # ------------------------------------------------------------ events

    def show_event(self, event: cev.ChatEvent) -> None:
        self._track(event)
        if isinstance(event, cev.UserContactLinkCreated | cev.GroupLinkCreated):
            link = event.link if isinstance(event.link, str) else event.link.link
            if self._making_links or link in self._links_printed:
                return  # the /ad or /create link under way prints it, or printed it
            if isinstance(event, cev.UserContactLinkCreated):
                self._show_address(event.link)  # made after /ad gave up waiting
            else:
                self._show_group_link(event.link)
            return
        if isinstance(event, cev.InvitationReady):
            cid = event.connection_id
            if cid in self._links_shown:
                return  # /c printed it already
            if cid not in self._links_late and self._inviting:
                return  # the /c under way gets this link and prints it
            self._links_late.discard(cid)
            self._links_shown.add(cid)
            self._show_link(event.link)
            return
        text = render.event_line(event, verbose=self.verbose)
        if text is None:
            return
        style = "message" if isinstance(event, cev.NewChatItem) else "event"
        if isinstance(event, cev.MemberFailed | cev.ConnectionFailed | cev.GroupMessageRefused):
            style = "error"
        self.printer.line(text, style)

    async def pump(self, events: asyncio.Queue[cev.ChatEvent]) -> None:
        """Show every event from `events`, until cancelled."""
        while True:
            event = await events.get()
            with failure_logged(log, "showing event %r failed", event):
                self.show_event(event)
