"""One-time invitations: ``/_connect`` (AddContact) and the InvitationReady events.

A link the relay gives in time is returned by /_connect; a later one comes as an
``invitation`` event. An InvitationReady whose link a /connect already returned is not
sent again; that is decided once no /connect is in flight (the event can come first).
"""

from __future__ import annotations

from parley.api import commands as c
from parley.api import responses as r
from parley.api.lookup import Ctx, JsonObject
from parley.chat import events as cev
from parley.chat.controller import ChatController


class Invitations:
    def __init__(self) -> None:
        self._connects_in_flight = 0
        self._answered: set[int] = set()
        self._held: list[cev.InvitationReady] = []

    async def add_contact(self, ctx: Ctx, cmd: c.AddContact) -> JsonObject:
        self._connects_in_flight += 1
        try:
            connection_id, link = await ctx.chat.create_invitation(ctx.invitation_timeout)
            if link is not None:
                self._answered.add(connection_id)
        finally:
            self._connects_in_flight -= 1
        if link is None:
            return r.command_error(
                "the relay did not answer in time: the invitation link will come as an "
                '"invitation" event when it is ready'
            )
        return r.invitation_response(ctx.me, connection_id, link)

    def hold(self, event: cev.InvitationReady) -> None:
        self._held.append(event)

    async def release(self, chat: ChatController) -> list[JsonObject]:
        """The invitation events that can be sent now."""
        if self._connects_in_flight or not self._held:
            return []
        held, self._held = self._held, []
        out: list[JsonObject] = []
        user: cev.User | None = None
        for e in held:
            if e.connection_id in self._answered:
                self._answered.discard(e.connection_id)
                continue
            user = user or await chat.active_user()
            out.append(r.invitation_response(user, e.connection_id, e.link))
        return out
