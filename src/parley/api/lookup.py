"""What every bot API command handler shares: its context and the id → view look-ups.

The controller names contacts, groups and members by their local names; the API names
them by number. These functions map numbers to views through the controller's public lists
and raise `Refused` (carrying a ready chatCmdError) when there is no such thing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from parley.api import commands as c
from parley.api import responses as r
from parley.chat import events as cev
from parley.chat.controller import ChatController, ChatError

JsonObject = r.JsonObject

INVITE_PREFIX = "parley:/invite#"


class Refused(Exception):
    """A command refused with a ready chatCmdError."""

    def __init__(self, resp: JsonObject) -> None:
        super().__init__(resp.get("chatError"))
        self.resp = resp


@dataclass(frozen=True)
class Ctx:
    """One command's inputs besides the command: the chat, the active user (None for the
    commands that run without one) and the handler's settings."""

    chat: ChatController
    user: cev.User | None
    invitation_timeout: float
    current: bool
    stoppable: bool

    @property
    def me(self) -> cev.User:
        assert self.user is not None, "a command that needs the active user"
        return self.user


# a command handler: (context, command) → the reply
Handler = Callable[[Ctx, Any], Awaitable[JsonObject]]


def refuse_not_found(error: str, message: str, **fields: object) -> Refused:
    return Refused(r.store_error(error, message, **fields))


async def active_user(chat: ChatController) -> cev.User:
    user = await chat.active_user()
    if user is None:
        raise Refused(r.no_active_user())
    return user


def check_user(user: cev.User, user_id: int | None) -> None:
    if user_id is not None and user_id != user.user_id:
        raise refuse_not_found(
            "userNotFound", f"no user {user_id}: this chat's user is {user.user_id}", userId=user_id
        )


async def contact(chat: ChatController, contact_id: int) -> cev.Contact:
    for x in await chat.contacts():
        if x.contact_id == contact_id:
            return x
    raise refuse_not_found("contactNotFound", f"no contact {contact_id}", contactId=contact_id)


async def group(chat: ChatController, group_id: int) -> cev.Group:
    for x in await chat.groups():
        if x.group_id == group_id:
            return x
    raise refuse_not_found("groupNotFound", f"no group {group_id}", groupId=group_id)


async def group_info(chat: ChatController, group_id: int) -> r.GroupInfoJson:
    g = await group(chat, group_id)
    return r.group_info_json(g, await chat.members(g.name))


def member(members: Sequence[cev.Member], group_id: int, member_id: int) -> cev.Member:
    for m in members:
        if m.member_row == member_id and m.category != "user":
            return m
    raise refuse_not_found(
        "groupMemberNotFound",
        f"no member {member_id} in group {group_id}",
        groupMemberId=member_id,
    )


async def group_member(
    chat: ChatController, group_id: int, member_id: int
) -> tuple[cev.Group, list[cev.Member], cev.Member]:
    """The group, its members, and the member `member_id` of them."""
    g = await group(chat, group_id)
    members = await chat.members(g.name)
    return g, members, member(members, group_id, member_id)


def unique_name(g: cev.Group, members: Sequence[cev.Member], m: cev.Member) -> None:
    """The controller names members by local name: refuse when that is ambiguous."""
    namesakes = [x for x in members if x.category != "user" and x.name == m.name]
    if len(namesakes) > 1:
        raise Refused(
            r.command_error(
                f"{len(namesakes)} members of #{g.name} are called {m.name}: "
                "parley cannot yet tell them apart by id"
            )
        )


async def members_or_none(chat: ChatController, g: cev.Group) -> list[cev.Member]:
    try:
        return await chat.members(g.name)
    except ChatError:  # the group is gone (deleted): no membership to show
        return []


async def chat_info(
    chat: ChatController, ref: c.ChatRef | c.NamedChatRef
) -> tuple[r.ChatInfoJson, str]:
    """The chat's chatInfo and local name."""
    if isinstance(ref, c.NamedChatRef):
        if ref.type == "direct":
            for x in await chat.contacts():
                if x.name == ref.name:
                    return r.direct_info(x), x.name
            raise refuse_not_found("contactNotFound", f"no contact {ref.name}")
        for g in await chat.groups():
            if g.name == ref.name:
                return r.group_chat_info(g, await chat.members(g.name)), g.name
        raise refuse_not_found("groupNotFound", f"no group #{ref.name}")
    if ref.type == "direct":
        x = await contact(chat, ref.chat_id)
        return r.direct_info(x), x.name
    g = await group(chat, ref.chat_id)
    return r.group_chat_info(g, await chat.members(g.name)), g.name


async def address(chat: ChatController) -> cev.AddressView:
    view = None
    with contextlib.suppress(NotImplementedError):  # no addresses in this chat: none
        view = await chat.show_address()
    if view is None:
        raise refuse_not_found(
            "userContactLinkNotFound", "no contact address yet: create one (/_address)"
        )
    return view


async def request(chat: ChatController, request_id: int) -> cev.ContactRequestView:
    for x in await chat.contact_requests():
        if x.request_id == request_id:
            return x
    raise refuse_not_found(
        "contactRequestNotFound", f"no contact request {request_id}", contactRequestId=request_id
    )


async def group_link(chat: ChatController, g: cev.Group) -> cev.GroupLinkView:
    view = await chat.group_link(g.name)
    if view is None:
        raise refuse_not_found(
            "groupLinkNotFound",
            f"group {g.group_id} has no link: create one (/_create link)",
            groupId=g.group_id,
        )
    return view
