"""Run the bot API's commands against a ChatController and map its events.

The controller names contacts, groups and members by their local names; the simplex-chat
API names them by number (contactId, groupId, groupMemberId). `ApiHandler` maps numbers to
names through the controller's public lists (contacts(), groups(), members()), calls the
controller, and builds the reply with `parley.api.responses`. It knows nothing about
WebSockets: the server gives it parsed commands and chat events and sends what it returns.
"""

from __future__ import annotations

import contextlib
import logging
import time
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


INVITE_PREFIX = "parley:/invite#"


class ApiHandler:
    """Executes commands (`run`) and turns chat events into simplex-chat events (`event`).

    Both generations of the API are served; where their replies differ only in fields, a
    reply carries both sets. Where they differ in the reply's type (a single ``/_remove``,
    a message's status event), `current` picks the current API's (the Python library
    backend sets it); otherwise the npm client 0.2.x's. `stoppable`: ``/_stop`` answers
    ``chatStopped`` (the owner closes the chat) instead of being refused.
    """

    def __init__(
        self,
        chat: ChatController,
        invitation_timeout: float = 30.0,
        *,
        current: bool = False,
        stoppable: bool = False,
    ) -> None:
        self.chat = chat
        self.invitation_timeout = invitation_timeout
        self.current = current
        self.stoppable = stoppable
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
        except NotImplementedError:
            return r.command_error(f"{_feature(cmd)} are not supported by this parley chat yet")
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
            case c.StopChat():
                if self.stoppable:
                    return r.response("chatStopped")
                return r.command_error(
                    "/_stop is not supported by parley: the chat cannot be stopped over the "
                    "API; stop the parley process instead"
                )
        user = await self._user()
        match cmd:
            case c.GetChats(count):
                chats = await self._chats()
                return r.response("apiChats", user, chats=chats[:count] if count else chats)
            case c.GetChat():
                return r.response("apiChat", user, chat=await self._chat(cmd))
            case c.SendMessages(ref, texts, quotes):
                return await self._send(user, ref, texts, quotes)
            case c.UpdateItem(ref, item_id, text):
                item_info, _ = await self._chat_info(ref)
                item = await self.chat.update_item(item_id, text)
                return r.response("chatItemUpdated", user, chatItem=r.a_chat_item(item_info, item))
            case c.DeleteItems(ref, item_ids, broadcast):
                item_info, _ = await self._chat_info(ref)
                deletions = []
                for item_id in item_ids:
                    item = await self.chat.delete_item(item_id, broadcast)
                    deletions.append(r.a_chat_item(item_info, item))
                return self._deleted(user, deletions, None)
            case c.DeleteMemberItems(group_id, item_ids):
                item_info, _ = await self._chat_info(c.ChatRef("group", group_id))
                moderated = []
                for item_id in item_ids:
                    item = await self.chat.moderate_item(item_id)
                    moderated.append(r.a_chat_item(item_info, item))
                return self._deleted(user, moderated, moderated)
            case c.SetReaction(ref, item_id, add, emoji):
                item_info, _ = await self._chat_info(ref)
                item = await self.chat.react(item_id, emoji, add)
                return r.reaction_response(user, item_info, item, emoji, add)
            case c.SyncRatchet(c.ChatRef("direct", contact_id), _, force):
                contact = await self._contact(contact_id)
                state = await self.chat.sync_ratchet(contact=contact.name, force=force)
                return r.response(
                    "contactRatchetSyncStarted",
                    user,
                    contact=r.contact_json(contact),
                    connectionStats=r.connection_stats(state),
                )
            case c.SyncRatchet(c.ChatRef(_, group_id), member_id, force):
                group = await self._group(group_id)
                members = await self.chat.members(group.name)
                member = self._member(members, group_id, member_id or 0)
                state = await self.chat.sync_ratchet(
                    group=group.name, member=member.name, force=force
                )
                return r.response(
                    "groupMemberRatchetSyncStarted",
                    user,
                    groupInfo=r.group_info_json(group, members),
                    member=r.member_json(member),
                    connectionStats=r.connection_stats(state),
                )
            case c.SetChatSettings(ref, send_receipts):
                _, name = await self._chat_info(ref)
                if ref.type == "direct":
                    await self.chat.set_receipts(send_receipts, contact=name)
                else:
                    await self.chat.set_receipts(send_receipts, group=name)
                return r.response("cmdOk", user)
            case c.SetUserReceipts(kind, _, on):
                await self.chat.set_receipts(on, everyone=kind)
                return r.response("cmdOk", user)
            case c.AddContact():
                return await self._add_contact(user)
            case c.Connect(link):
                connection_id = await self.chat.connect(link)
                invitation = link.strip().startswith(INVITE_PREFIX)
                return r.response(
                    "sentConfirmation" if invitation else "sentInvitation",
                    user,
                    connection=_pending(connection_id, via_address=not invitation),
                )
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
            case c.RemoveMember(group_id, member_id, more, listed):
                return await self._remove_members(user, group_id, (member_id, *more), listed)
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
        return await self._run_more(user, cmd)

    async def _run_more(self, user: cev.User, cmd: c.Command) -> JsonObject:
        """Addresses, contact requests, group links, roles, profiles and lists."""
        match cmd:
            case c.ShowMyAddress(user_id):
                self._check_user(user, user_id)
                address = await self._address()
                return r.response("userContactLink", user, contactLink=r.address_json(address))
            case c.CreateMyAddress(user_id):
                self._check_user(user, user_id)
                link = await self.chat.create_address(self.invitation_timeout)
                return r.response(
                    "userContactLinkCreated",
                    user,
                    connReqContact=link,
                    connLinkContact=r.conn_link(link),
                )
            case c.DeleteMyAddress(user_id):
                self._check_user(user, user_id)
                await self._address()
                await self.chat.delete_address()
                return r.response("userContactLinkDeleted", user)
            case c.SetAutoAccept(on, welcome, user_id):
                self._check_user(user, user_id)
                await self._address()
                address = await self.chat.set_auto_accept(on, welcome)
                out = r.response(
                    "userContactLinkUpdated",
                    user,
                    contactLink=r.address_json(address),
                    connReqContact=address.link,
                    autoAccept=address.auto_accept,
                )
                if address.welcome:
                    out["autoReply"] = r.text_content(address.welcome)
                return out
            case c.SetProfileAddress(on, user_id):
                self._check_user(user, user_id)
                if on:
                    return r.command_error(
                        "parley profiles do not carry a contact address: share the address "
                        "link itself (/show_address)"
                    )
                profile = r.user_profile_json(user)
                return r.response(
                    "userProfileUpdated",
                    user,
                    fromProfile=profile,
                    toProfile=profile,
                    updateSummary=_no_updates(),
                )
            case c.AcceptContact(request_id):
                await self._request(request_id)
                contact = await self.chat.accept_contact_request(request_id)
                return r.response("acceptingContactRequest", user, contact=r.contact_json(contact))
            case c.RejectContact(request_id):
                request = await self._request(request_id)
                await self.chat.reject_contact_request(request_id)
                return r.response(
                    "contactRequestRejected",
                    user,
                    contactRequest=r.contact_request_json(request),
                )
            case c.UpdateProfile(user_id, name, full):
                self._check_user(user, user_id)
                if (name, full) == (user.display_name, user.full_name):
                    return r.response("userProfileNoChange", user)
                updated = await self.chat.update_profile(name, full)
                return r.response(
                    "userProfileUpdated",
                    updated,
                    fromProfile=r.user_profile_json(user),
                    toProfile=r.user_profile_json(updated),
                    updateSummary=_no_updates(),
                )
            case c.UpdateGroupProfile(group_id, name, full):
                group = await self._group(group_id)
                if (name, full) == (group.display_name, group.full_name):
                    info = await self._group_info(group_id)
                    return r.response("groupUpdated", user, fromGroup=info, toGroup=info)
                before = await self._group_info(group_id)
                await self.chat.update_group_profile(group.name, name, full)
                return r.response(
                    "groupUpdated", user, fromGroup=before, toGroup=await self._group_info(group_id)
                )
            case c.CreateGroupLink(group_id, role):
                group = await self._group(group_id)
                link = await self.chat.create_group_link(group.name, role, self.invitation_timeout)
                view = cev.GroupLinkView(group, link, role)
                return r.response(
                    "groupLinkCreated",
                    user,
                    groupInfo=await self._group_info(group_id),
                    **r.group_link_fields(view),
                )
            case c.SetGroupLinkRole(group_id, role):
                group = await self._group(group_id)
                await self._group_link(group)
                view = await self.chat.set_group_link_role(group.name, role)
                return r.response(
                    "groupLink",
                    user,
                    groupInfo=await self._group_info(group_id),
                    **r.group_link_fields(view),
                )
            case c.DeleteGroupLink(group_id):
                group = await self._group(group_id)
                await self._group_link(group)
                await self.chat.delete_group_link(group.name)
                return r.response(
                    "groupLinkDeleted", user, groupInfo=await self._group_info(group_id)
                )
            case c.GetGroupLink(group_id):
                group = await self._group(group_id)
                view = await self._group_link(group)
                return r.response(
                    "groupLink",
                    user,
                    groupInfo=await self._group_info(group_id),
                    **r.group_link_fields(view),
                )
            case c.ListContacts(user_id):
                self._check_user(user, user_id)
                contacts = [r.contact_json(x) for x in await self.chat.contacts()]
                return r.response("contactsList", user, contacts=contacts)
            case c.ListGroups(user_id, contact_id, search):
                self._check_user(user, user_id)
                return r.response(
                    "groupsList", user, groups=await self._list_groups(contact_id, search)
                )
            case c.SetMembersRole(group_id, member_ids, role):
                return await self._set_roles(user, group_id, member_ids, role)
            case c.ConnectPlan(user_id, link):
                self._check_user(user, user_id)
                return r.response(
                    "connectionPlan",
                    user,
                    connLink=r.conn_link(link),
                    connectionPlan=await self._plan(link),
                )
        return r.command_error(f"unhandled command {cmd!r}")

    @staticmethod
    def _check_user(user: cev.User, user_id: int | None) -> None:
        if user_id is not None and user_id != user.user_id:
            raise _Refused(
                r.store_error(
                    "userNotFound",
                    f"no user {user_id}: this chat's user is {user.user_id}",
                    userId=user_id,
                )
            )

    async def _address(self) -> cev.AddressView:
        try:
            address = await self.chat.show_address()
        except NotImplementedError:  # no addresses in this chat: so there is none
            address = None
        if address is None:
            raise _Refused(
                r.store_error(
                    "userContactLinkNotFound", "no contact address yet: create one (/_address)"
                )
            )
        return address

    async def _request(self, request_id: int) -> cev.ContactRequestView:
        for request in await self.chat.contact_requests():
            if request.request_id == request_id:
                return request
        raise _Refused(
            r.store_error(
                "contactRequestNotFound",
                f"no contact request {request_id}",
                contactRequestId=request_id,
            )
        )

    async def _group_link(self, group: cev.Group) -> cev.GroupLinkView:
        view = await self.chat.group_link(group.name)
        if view is None:
            raise _Refused(
                r.store_error(
                    "groupLinkNotFound",
                    f"group {group.group_id} has no link: create one (/_create link)",
                    groupId=group.group_id,
                )
            )
        return view

    async def _list_groups(self, contact_id: int | None, search: str | None) -> list[JsonObject]:
        out: list[JsonObject] = []
        if contact_id is not None:
            await self._contact(contact_id)
        for group in await self.chat.groups():
            if search is not None and search.casefold() not in group.display_name.casefold():
                continue
            members = await self._members_or_none(group)
            if contact_id is not None and not any(m.contact_id == contact_id for m in members):
                continue
            out.append(dict(r.group_info_json(group, members)))
        return out

    async def _set_roles(
        self, user: cev.User, group_id: int, member_ids: Sequence[int], role: str
    ) -> JsonObject:
        group = await self._group(group_id)
        members = await self.chat.members(group.name)
        targets = [self._member(members, group_id, i) for i in member_ids]
        for member in targets:
            self._unique_name(group, members, member)
        for member in targets:
            await self.chat.set_member_role(group.name, member.name, role)
        after = await self.chat.members(group.name)
        by_row = {m.member_row: m for m in after}
        return r.response(
            "membersRoleUser",
            user,
            groupInfo=r.group_info_json(group, after),
            members=[r.member_json(by_row.get(m.member_row, m)) for m in targets],
            toRole=role,
        )

    async def _plan(self, link: str) -> JsonObject:
        """What `link` is, as the current API's ConnectionPlan (parley knows whether a link
        is a one-time invitation, a contact address, or the user's own address)."""
        text = link.strip()
        if text.startswith(INVITE_PREFIX):
            return {"type": "invitationLink", "invitationLinkPlan": {"type": "ok"}}
        if not text.startswith("parley:/"):
            raise _Refused(
                r.command_error(
                    "not a parley link (parley:/invite#... or parley:/contact#...): parley "
                    "connects only through parley links"
                )
            )
        own = None
        with contextlib.suppress(NotImplementedError):
            own = await self.chat.show_address()
        plan = "ownLink" if own is not None and own.link == text else "ok"
        return {"type": "contactAddress", "contactAddressPlan": {"type": plan}}

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
        self,
        user: cev.User,
        ref: c.ChatRef | c.NamedChatRef,
        texts: Sequence[str],
        quotes: Sequence[int | None] = (),
    ) -> JsonObject:
        info, name = await self._chat_info(ref)
        sent: list[r.AChatItemJson] = []
        for i, text in enumerate(texts):
            quote = quotes[i] if i < len(quotes) else None
            if ref.type == "direct":
                item = await self.chat.send_contact_message(name, text, quote)
            else:
                item = await self.chat.send_group_message(name, text, quote)
            sent.append(r.a_chat_item(info, item))
        return r.response("newChatItems", user, chatItems=sent)

    def _deleted(
        self,
        user: cev.User,
        deleted: list[r.AChatItemJson],
        to_items: list[r.AChatItemJson] | None,
    ) -> JsonObject:
        if self.current or len(deleted) != 1:
            return r.response(
                "chatItemsDeleted",
                user,
                chatItemDeletions=[
                    {"deletedChatItem": d, "toChatItem": to_items[i] if to_items else None}
                    for i, d in enumerate(deleted)
                ],
                byUser=True,
                timed=False,
            )
        return r.item_deleted_response(
            user, deleted[0], to_items[0] if to_items else None, True, current=False
        )

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
        return r.response(
            "invitation",
            user,
            connReqInvitation=link,
            connLinkInvitation=r.conn_link(link),
            connection=_pending(connection_id, via_address=False),
        )

    @staticmethod
    def _unique_name(group: cev.Group, members: Sequence[cev.Member], member: cev.Member) -> None:
        """The controller names members by local name: refuse when that is ambiguous."""
        namesakes = [m for m in members if m.category != "user" and m.name == member.name]
        if len(namesakes) > 1:
            raise _Refused(
                r.command_error(
                    f"{len(namesakes)} members of #{group.name} are called {member.name}: "
                    "parley cannot yet tell them apart by id"
                )
            )

    async def _remove_members(
        self, user: cev.User, group_id: int, member_ids: Sequence[int], listed: bool
    ) -> JsonObject:
        group = await self._group(group_id)
        members = await self.chat.members(group.name)
        targets = [self._member(members, group_id, i) for i in member_ids]
        for member in targets:
            self._unique_name(group, members, member)
        for member in targets:
            await self.chat.remove_member(group.name, member.name)
        after = await self.chat.members(group.name)
        by_row = {m.member_row: m for m in after}
        removed = [r.member_json(by_row.get(m.member_row, m)) for m in targets]
        info = r.group_info_json(group, after)
        if listed or self.current or len(removed) > 1:
            return r.response(
                "userDeletedMembers", user, groupInfo=info, members=removed, withMessages=False
            )
        return r.response("userDeletedMember", user, groupInfo=info, member=removed[0])

    # ------------------------------------------------------------ events

    async def event(self, event: cev.ChatEvent) -> list[JsonObject]:
        """The simplex-chat events to send for one chat event (often one, maybe none)."""
        if isinstance(event, cev.InvitationReady):
            self._held.append(event)
            return await self._release_invitations()
        if isinstance(event, cev.ReceivedContactRequest) and not await self._waiting(event):
            return []  # auto-accept took it: acceptingContactRequest follows, as in simplex-chat
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
        out = r.event_response(user, event, members, item, current=self.current)
        return [out] if out is not None else []

    async def _waiting(self, event: cev.ReceivedContactRequest) -> bool:
        """Whether the request still waits for /_accept or /_reject."""
        requests = await self.chat.contact_requests()
        return any(x.request_id == event.request.request_id for x in requests)

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
            out.append(
                r.response(
                    "invitation",
                    user,
                    connReqInvitation=e.link,
                    connLinkInvitation=r.conn_link(e.link),
                    connection=_pending(e.connection_id, via_address=False),
                )
            )
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


def _pending(connection_id: int, *, via_address: bool) -> JsonObject:
    """The current API's PendingContactConnection, with what parley knows of it."""
    now = r.timestamp(time.time())
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


def _no_updates() -> JsonObject:
    """The UserProfileUpdateSummary parley gives (it announces the profile in the
    background and does not count the contacts it reached)."""
    return {"updateSuccesses": 0, "updateFailures": 0, "changedContacts": []}


def _feature(cmd: c.Command | c.ParseError) -> str:
    """What a command needs, in words (for a chat that lacks it)."""
    match cmd:
        case c.AcceptContact() | c.RejectContact():
            return "contact requests"
        case c.CreateGroupLink() | c.SetGroupLinkRole() | c.DeleteGroupLink() | c.GetGroupLink():
            return "group links"
        case c.SetMembersRole():
            return "member roles"
        case c.UpdateProfile() | c.UpdateGroupProfile():
            return "profile changes"
    return "contact addresses"
