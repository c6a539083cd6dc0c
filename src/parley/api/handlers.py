"""Run the bot API's commands against a ChatController and map its events.

The controller names contacts, groups and members by their local names; the simplex-chat
API names them by number (contactId, groupId, groupMemberId). `ApiHandler` maps numbers to
names through the controller's public lists (contacts(), groups(), members()), calls the
controller, and builds the reply with `parley.api.responses`. It knows nothing about
WebSockets: the server gives it parsed commands and chat events and sends what it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from parley.api import commands as c
from parley.api import responses as r
from parley.chat import events as cev
from parley.chat.controller import ChatController, ChatError
from parley.protocol.chat import ChatMessageError

log = logging.getLogger(__name__)

JsonObject = r.JsonObject

# how far back /_get chat looks for before=/after=/search= and chatItemStatusUpdated looks
# for the item (the controller can only return the latest N items)
SCAN_LIMIT = 10_000
STATUS_SCAN = 1_000


class _Refused(Exception):
    """A command refused with a ready chatCmdError."""

    def __init__(self, resp: JsonObject) -> None:
        super().__init__(resp.get("chatError"))
        self.resp = resp


class ApiHandler:
    """Executes commands (`run`) and turns chat events into simplex-chat events (`event`)."""

    def __init__(self, chat: ChatController, invitation_timeout: float = 30.0) -> None:
        self.chat = chat
        self.invitation_timeout = invitation_timeout
        # InvitationReady events: those whose link a /connect already returned are not
        # sent again; decided once no /connect is in flight (the event can come first)
        self._connects_in_flight = 0
        self._answered: set[int] = set()
        self._held: list[cev.InvitationReady] = []

    # ------------------------------------------------------------ commands

    async def run(self, cmd: c.Command | c.ParseError) -> JsonObject:
        """The reply ("resp") to one command; never raises for a bad command."""
        try:
            return await self._run(cmd)
        except _Refused as e:
            return e.resp
        except ChatError as e:
            return r.command_error(str(e))
        except ChatMessageError as e:  # e.g. a message too large for the protocol
            return r.command_error(str(e))
        except Exception as e:
            log.exception("bot API command %r failed", cmd)
            return r.command_error(f"internal error: {type(e).__name__}: {e}")

    async def _run(self, cmd: c.Command | c.ParseError) -> JsonObject:
        match cmd:
            case c.ParseError(message):
                return r.command_error(message)
            case c.Unsupported(command, reason):
                return r.command_error(f"{command} is not supported by parley: {reason}")
            case c.ShowActiveUser():
                return r.response("activeUser", await self._user())
            case c.CreateActiveUser(name, full):
                existing = await self.chat.active_user()
                if existing is not None:  # parley's chat serves the user it has
                    return r.command_error(
                        f"this chat has a user already ({existing.display_name}): parley "
                        "serves one user per database"
                    )
                return r.response("activeUser", await self.chat.create_user(name, full))
            case c.StartChat():
                if self.chat.started:
                    return r.response("chatRunning")
                await self.chat.start()
                return r.response("chatStarted")
        user = await self._user()
        match cmd:
            case c.GetChats():
                return r.response("apiChats", user, chats=await self._chats())
            case c.GetChat():
                return r.response("apiChat", user, chat=await self._chat(cmd))
            case c.SendMessages(ref, texts):
                return await self._send(user, ref, texts)
            case c.AddContact():
                return await self._add_contact(user)
            case c.Connect(link):
                await self.chat.connect(link)
                return r.response("sentConfirmation", user)
            case c.NewGroup(name, full):
                group = await self.chat.create_group(name, full)
                members = await self.chat.members(group.name)
                return r.response("groupCreated", user, groupInfo=r.group_info_json(group, members))
            case c.AddMember(group_id, contact_id, role):
                group = await self._group(group_id)
                contact = await self._contact(contact_id)
                member = await self.chat.add_member(group.name, contact.name, role)
                return r.response(
                    "sentGroupInvitation",
                    user,
                    groupInfo=await self._group_info(group_id),
                    contact=r.contact_json(contact),
                    member=r.member_json(member),
                )
            case c.JoinGroup(group_id):
                group = await self.chat.join_group((await self._group(group_id)).name)
                members = await self.chat.members(group.name)
                out = r.response(
                    "userAcceptedGroupSent", user, groupInfo=r.group_info_json(group, members)
                )
                host = r.host_member(members)
                if host is not None and host.contact_id is not None:
                    contacts = {x.contact_id: x for x in await self.chat.contacts()}
                    if host.contact_id in contacts:
                        out["hostContact"] = r.contact_json(contacts[host.contact_id])
                return out
            case c.ListMembers(group_id):
                group = await self._group(group_id)
                members = await self.chat.members(group.name)
                return r.response("groupMembers", user, group=r.group_json(group, members))
            case c.LeaveGroup(group_id):
                await self.chat.leave_group((await self._group(group_id)).name)
                info = await self._group_info(group_id)
                return r.response("leftMemberUser", user, groupInfo=info)
            case c.RemoveMember(group_id, member_id):
                return await self._remove_member(user, group_id, member_id)
            case c.DeleteChat(c.ChatRef("direct", contact_id)):
                contact = await self._contact(contact_id)
                await self.chat.delete_contact(contact.name)
                return r.response("contactDeleted", user, contact=r.contact_json(contact))
            case c.DeleteChat(c.ChatRef(_, group_id)):
                group = await self._group(group_id)
                info = await self._group_info(group_id)
                await self.chat.delete_group(group.name)
                return r.response("groupDeletedUser", user, groupInfo=info)
            case c.ContactInfo(contact_id):
                contact = await self._contact(contact_id)
                # parley has no per-connection statistics to report
                return r.response(
                    "contactInfo", user, contact=r.contact_json(contact), connectionStats={}
                )
            case c.GroupMemberInfo(group_id, member_id):
                group = await self._group(group_id)
                members = await self.chat.members(group.name)
                member = self._member(members, group_id, member_id)
                return r.response(
                    "groupMemberInfo",
                    user,
                    groupInfo=r.group_info_json(group, members),
                    member=r.member_json(member),
                )
            case c.ChatRead(ref):
                await self._chat_info(ref)  # the chat must exist; parley tracks no reads
                return r.response("cmdOk", user)
            case c.ShowMyAddress():
                raise _Refused(
                    r.store_error("userContactLinkNotFound", "parley has no contact addresses")
                )
        return r.command_error(f"unhandled command {cmd!r}")

    async def _user(self) -> cev.User:
        user = await self.chat.active_user()
        if user is None:
            raise _Refused(r.no_active_user())
        return user

    # id → view

    async def _contact(self, contact_id: int) -> cev.Contact:
        for contact in await self.chat.contacts():
            if contact.contact_id == contact_id:
                return contact
        raise _Refused(
            r.store_error("contactNotFound", f"no contact {contact_id}", contactId=contact_id)
        )

    async def _group(self, group_id: int) -> cev.Group:
        for group in await self.chat.groups():
            if group.group_id == group_id:
                return group
        raise _Refused(r.store_error("groupNotFound", f"no group {group_id}", groupId=group_id))

    async def _group_info(self, group_id: int) -> r.GroupInfoJson:
        group = await self._group(group_id)
        return r.group_info_json(group, await self.chat.members(group.name))

    @staticmethod
    def _member(members: Sequence[cev.Member], group_id: int, member_id: int) -> cev.Member:
        for m in members:
            if m.member_row == member_id and m.category != "user":
                return m
        raise _Refused(
            r.store_error(
                "groupMemberNotFound",
                f"no member {member_id} in group {group_id}",
                groupMemberId=member_id,
            )
        )

    async def _chat_info(self, ref: c.ChatRef | c.NamedChatRef) -> tuple[r.ChatInfoJson, str]:
        """The chat's chatInfo and local name."""
        if isinstance(ref, c.NamedChatRef):
            if ref.type == "direct":
                for contact in await self.chat.contacts():
                    if contact.name == ref.name:
                        return r.direct_info(contact), contact.name
                raise _Refused(r.store_error("contactNotFound", f"no contact {ref.name}"))
            for group in await self.chat.groups():
                if group.name == ref.name:
                    return r.group_chat_info(group, await self.chat.members(group.name)), group.name
            raise _Refused(r.store_error("groupNotFound", f"no group #{ref.name}"))
        if ref.type == "direct":
            contact = await self._contact(ref.chat_id)
            return r.direct_info(contact), contact.name
        group = await self._group(ref.chat_id)
        return r.group_chat_info(group, await self.chat.members(group.name)), group.name

    # chats

    async def _items(
        self, ref: c.ChatRef | c.NamedChatRef, name: str, count: int
    ) -> list[cev.ChatItem]:
        if ref.type == "direct":
            return await self.chat.chat_items(contact=name, count=count)
        return await self.chat.chat_items(group=name, count=count)

    async def _chats(self) -> list[r.ChatJson]:
        """Every contact and group with its latest item, the most recent first."""
        chats: list[tuple[float, r.ChatJson]] = []
        for contact in await self.chat.contacts():
            items = await self.chat.chat_items(contact=contact.name, count=1)
            chats.append(
                (items[-1].created_at if items else 0.0, r.chat_json(r.direct_info(contact), items))
            )
        for group in await self.chat.groups():
            members = await self.chat.members(group.name)
            items = await self.chat.chat_items(group=group.name, count=1)
            info = r.group_chat_info(group, members)
            chats.append((items[-1].created_at if items else 0.0, r.chat_json(info, items)))
        chats.sort(key=lambda x: x[0], reverse=True)
        return [chat for _, chat in chats]

    async def _chat(self, cmd: c.GetChat) -> r.ChatJson:
        info, name = await self._chat_info(cmd.chat)
        if cmd.before is None and cmd.after is None and cmd.search is None:
            return r.chat_json(info, await self._items(cmd.chat, name, cmd.count))
        items = await self._items(cmd.chat, name, SCAN_LIMIT)
        if cmd.search is not None:
            needle = cmd.search.casefold()
            items = [i for i in items if needle in i.text.casefold()]
        if cmd.after is not None:
            after = cmd.after
            items = [i for i in items if i.item_id > after][: cmd.count]
        else:
            if cmd.before is not None:
                before = cmd.before
                items = [i for i in items if i.item_id < before]
            items = items[-cmd.count :]
        return r.chat_json(info, items)

    async def _send(
        self, user: cev.User, ref: c.ChatRef | c.NamedChatRef, texts: Sequence[str]
    ) -> JsonObject:
        info, name = await self._chat_info(ref)
        sent: list[r.AChatItemJson] = []
        for text in texts:
            if ref.type == "direct":
                item = await self.chat.send_contact_message(name, text)
            else:
                item = await self.chat.send_group_message(name, text)
            sent.append(r.a_chat_item(info, item))
        return r.response("newChatItems", user, chatItems=sent)

    # contacts and groups

    async def _add_contact(self, user: cev.User) -> JsonObject:
        self._connects_in_flight += 1
        try:
            connection_id, link = await self.chat.create_invitation(self.invitation_timeout)
            if link is not None:
                self._answered.add(connection_id)
        finally:
            self._connects_in_flight -= 1
        if link is None:
            return r.command_error(
                "the relay did not answer in time: the invitation link will come as an "
                '"invitation" event when it is ready'
            )
        return r.response("invitation", user, connReqInvitation=link)

    async def _remove_member(self, user: cev.User, group_id: int, member_id: int) -> JsonObject:
        group = await self._group(group_id)
        members = await self.chat.members(group.name)
        member = self._member(members, group_id, member_id)
        # the controller removes by display name: refuse when that would be ambiguous
        namesakes = [m for m in members if m.category != "user" and m.name == member.name]
        if len(namesakes) > 1:
            return r.command_error(
                f"{len(namesakes)} members of #{group.name} are called {member.name}: "
                "parley cannot yet remove one of them by id"
            )
        await self.chat.remove_member(group.name, member.name)
        after = await self.chat.members(group.name)
        removed = next((m for m in after if m.member_row == member_id), member)
        return r.response(
            "userDeletedMember",
            user,
            groupInfo=r.group_info_json(group, after),
            member=r.member_json(removed),
        )

    # ------------------------------------------------------------ events

    async def event(self, event: cev.ChatEvent) -> list[JsonObject]:
        """The simplex-chat events to send for one chat event (often one, maybe none)."""
        if isinstance(event, cev.InvitationReady):
            self._held.append(event)
            return await self._release_invitations()
        user = await self.chat.active_user()
        group = r.event_group(event)
        members: list[cev.Member] = []
        if group is not None:
            members = await self._members_or_none(group)
        item: cev.ChatItem | None = None
        if isinstance(event, cev.ChatItemStatus):
            item = await self._find_item(event.item_id)
            if item is not None and item.group is not None:
                members = await self._members_or_none(item.group)
        out = r.event_response(user, event, members, item)
        return [out] if out is not None else []

    async def after_command(self) -> list[JsonObject]:
        """Events held back while a command ran that can be sent now."""
        return await self._release_invitations()

    async def _release_invitations(self) -> list[JsonObject]:
        if self._connects_in_flight or not self._held:
            return []
        held, self._held = self._held, []
        out: list[JsonObject] = []
        user: cev.User | None = None
        for e in held:
            if e.connection_id in self._answered:
                self._answered.discard(e.connection_id)
                continue
            user = user or await self.chat.active_user()
            out.append(r.response("invitation", user, connReqInvitation=e.link))
        return out

    async def _members_or_none(self, group: cev.Group) -> list[cev.Member]:
        try:
            return await self.chat.members(group.name)
        except ChatError:  # the group is gone (deleted): no membership to show
            return []

    async def _find_item(self, item_id: int) -> cev.ChatItem | None:
        for item in await self.chat.chat_items(count=STATUS_SCAN):
            if item.item_id == item_id:
                return item
        return None
