"""Run the bot API's commands against a ChatController and map its events.

`ApiHandler` is the front: it resolves the active user, looks the command's handler up in
one table and maps failures to chatCmdError replies. The handlers live by concern, each a
function of (`lookup.Ctx`, command) that returns the reply:

- `users`: the active user, start/stop, the profile, user-wide receipts
- `contacts`: connecting, the contact address and its requests, contact info and list
- `groups`: groups, members and roles, the group profile, group links, the group list
- `items`: sending, editing, deleting, moderating items, reactions
- `chats`: the chat list and one chat's items, reads, receipt settings, ratchet sync,
  deleting a chat
- `invitations`: /_connect's one-time invitations and the InvitationReady events
- `lookup`: the context and the id → view look-ups every handler shares

It knows nothing about WebSockets: the server gives it parsed commands and chat events and
sends what it returns.
"""

from __future__ import annotations

import logging
from dataclasses import KW_ONLY, dataclass, field

from parley.api import chats, contacts, groups, items, users
from parley.api import commands as c
from parley.api import lookup as look
from parley.api import responses as r
from parley.api.chats import SCAN_LIMIT
from parley.api.invitations import Invitations
from parley.api.lookup import INVITE_PREFIX, Ctx, Handler, JsonObject, Refused
from parley.chat import events as cev
from parley.chat.controller import ChatController, ChatError
from parley.protocol.chat import ChatMessageError

__all__ = ["INVITE_PREFIX", "SCAN_LIMIT", "STATUS_SCAN", "ApiHandler", "JsonObject"]

log = logging.getLogger(__name__)

# how far back chatItemStatusUpdated looks for the item
STATUS_SCAN = 1_000


# the commands that run without an active user
WITHOUT_USER: dict[type, Handler] = {
    c.ShowActiveUser: users.show_active_user,
    c.CreateActiveUser: users.create_active_user,
    c.StartChat: users.start_chat,
    c.StopChat: users.stop_chat,
}

# the others, by concern (/_connect's AddContact is the handler's own: it holds state)
WITH_USER: dict[type, Handler] = {
    # the user
    c.SetProfileAddress: users.set_profile_address,
    c.UpdateProfile: users.update_profile,
    c.SetUserReceipts: users.set_user_receipts,
    # contacts and the address
    c.Connect: contacts.connect,
    c.ConnectPlan: contacts.connect_plan,
    c.ShowMyAddress: contacts.show_address,
    c.CreateMyAddress: contacts.create_address,
    c.DeleteMyAddress: contacts.delete_address,
    c.SetAutoAccept: contacts.set_auto_accept,
    c.AcceptContact: contacts.accept_request,
    c.RejectContact: contacts.reject_request,
    c.ContactInfo: contacts.contact_info,
    c.ListContacts: contacts.list_contacts,
    # groups, members, links
    c.NewGroup: groups.new_group,
    c.AddMember: groups.add_member,
    c.JoinGroup: groups.join_group,
    c.ListMembers: groups.list_members,
    c.LeaveGroup: groups.leave_group,
    c.GroupMemberInfo: groups.member_info,
    c.RemoveMember: groups.remove_members,
    c.SetMembersRole: groups.set_roles,
    c.UpdateGroupProfile: groups.update_group_profile,
    c.CreateGroupLink: groups.create_group_link,
    c.SetGroupLinkRole: groups.set_group_link_role,
    c.DeleteGroupLink: groups.delete_group_link,
    c.GetGroupLink: groups.get_group_link,
    c.ListGroups: groups.list_groups,
    # messages
    c.SendMessages: items.send,
    c.UpdateItem: items.update,
    c.DeleteItems: items.delete,
    c.DeleteMemberItems: items.moderate,
    c.SetReaction: items.react,
    c.GetItemInfo: items.item_info,
    # whole chats
    c.GetChats: chats.get_chats,
    c.GetChat: chats.get_chat,
    c.ChatRead: chats.chat_read,
    c.SetChatSettings: chats.set_chat_settings,
    c.SetContactPrefs: chats.set_contact_prefs,
    c.SyncRatchet: chats.sync_ratchet,
    c.DeleteChat: chats.delete_chat,
}


@dataclass(eq=False)
class ApiHandler:
    """Executes commands (`run`) and turns chat events into simplex-chat events (`event`).

    Both generations of the API are served; where their replies differ only in fields, a
    reply carries both sets. Where they differ in the reply's type (a single ``/_remove``,
    a message's status event), `current` picks the current API's (the Python library
    backend sets it); otherwise the npm client 0.2.x's. `stoppable`: ``/_stop`` answers
    ``chatStopped`` (the owner closes the chat) instead of being refused.
    """

    chat: ChatController
    invitation_timeout: float = 30.0
    _: KW_ONLY
    current: bool = False
    stoppable: bool = False
    _invitations: Invitations = field(init=False, default_factory=Invitations)
    _handlers: dict[type, Handler] = field(init=False)

    def __post_init__(self) -> None:
        self._handlers = {**WITH_USER, c.AddContact: self._invitations.add_contact}

    # ------------------------------------------------------------ commands

    async def run(self, cmd: c.Command | c.ParseError) -> JsonObject:
        """The reply ("resp") to one command; never raises for a bad command."""
        try:
            return await self._run(cmd)
        except Refused as e:
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
        without_user = WITHOUT_USER.get(type(cmd))
        if without_user is not None:
            return await without_user(self._context(None), cmd)
        user = await look.active_user(self.chat)
        handler = self._handlers.get(type(cmd))
        if handler is None:
            return r.command_error(f"unhandled command {cmd!r}")
        return await handler(self._context(user), cmd)

    def _context(self, user: cev.User | None) -> Ctx:
        return Ctx(self.chat, user, self.invitation_timeout, self.current, self.stoppable)

    # ------------------------------------------------------------ events

    async def event(self, event: cev.ChatEvent) -> list[JsonObject]:
        """The simplex-chat events to send for one chat event (often one, maybe none)."""
        if isinstance(event, cev.InvitationReady):
            self._invitations.hold(event)
            return await self._invitations.release(self.chat)
        if isinstance(event, cev.ReceivedContactRequest) and not await self._waiting(event):
            return []  # auto-accept took it: acceptingContactRequest follows, as in simplex-chat
        user = await self.chat.active_user()
        group = r.event_group(event)
        members: list[cev.Member] = []
        if group is not None:
            members = await look.members_or_none(self.chat, group)
        item: cev.ChatItem | None = None
        if isinstance(event, cev.ChatItemStatus):
            item = await self._find_item(event.item_id)
            if item is not None and item.group is not None:
                members = await look.members_or_none(self.chat, item.group)
        out = r.event_response(user, event, members, item, current=self.current)
        return [out] if out is not None else []

    async def after_command(self) -> list[JsonObject]:
        """Events held back while a command ran that can be sent now."""
        return await self._invitations.release(self.chat)

    async def _waiting(self, event: cev.ReceivedContactRequest) -> bool:
        """Whether the request still waits for /_accept or /_reject."""
        requests = await self.chat.contact_requests()
        return any(x.request_id == event.request.request_id for x in requests)

    async def _find_item(self, item_id: int) -> cev.ChatItem | None:
        for item in await self.chat.chat_items(count=STATUS_SCAN):
            if item.item_id == item_id:
                return item
        return None


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
