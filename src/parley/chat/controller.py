"""The chat controller: contacts and groups on top of the agent, driven by continuations.

Every agent call is asynchronous. Before making it, the chat stores a continuation row
(`commands`: the corr id, what to do on completion, and the call itself); when the agent
reports INV/OK/ERR with that corr id, the continuation runs, its result and the command's
end commit in one transaction, and only then is the agent event acknowledged. Chat
messages to send go through an outbox in the same transaction as the state change that
causes them. After a crash, the outbox is sent again and unissued calls are issued again;
receivers drop repeats by message id, and continuations check their state first, so
running anything twice changes nothing more.

This module is the front: the life cycle and the public calls. The rooms behind it:
`contacts`, `groups`, `introductions` (DESIGN §4 steps 3 to 7), `handshake` (CONF, INFO,
CON), `inbox` (received messages, one handler per chat event), `continuations` (what
runs on an agent command's completion), `recovery` (start-up, re-introductions), `views`,
`effects` (what a transaction asks to be done after its commit) and `engine` (which does
it), `store` (every SQL statement), `model` (names, statuses, configuration).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from parley.agent import Agent, AgentConfig, AgentError, PendingReport
from parley.chat import (
    addresses,
    contacts,
    group_links,
    groups,
    items,
    profiles,
    recovery,
    store,
    views,
)
from parley.chat import events as cev
from parley.chat.effects import Effects
from parley.chat.engine import Engine
from parley.chat.model import (
    ChatConfig,
    ChatError,
    intro_delay,
    profile,
    text_message,
)
from parley.chat.subscriber import Subscriber
from parley.loops import failure_logged
from parley.store import Database

__all__ = ["ChatConfig", "ChatController", "ChatError", "intro_delay"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class ChatController:
    """`chat = await ChatController.open(config)`; call its methods; read `chat.events`."""

    def __init__(self, config: ChatConfig, db: Database, agent: Agent) -> None:
        self.config = config
        self._db = db
        self.agent = agent
        self.events: asyncio.Queue[cev.ChatEvent] = asyncio.Queue()
        self._lock = asyncio.Lock()
        # (read `self.events` at each event: a front end may replace the queue)
        self._engine = Engine(db, agent, lambda e: self.events.put_nowait(e), self._lock)
        self._subscriber = Subscriber(
            db, agent, self._engine, config, lambda e: self.events.put_nowait(e)
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.started = False

    # ------------------------------------------------------------ life cycle

    @classmethod
    async def open(cls, config: ChatConfig) -> ChatController:
        prefix = str(config.db_prefix)
        key = config.database_key
        db = await Database.open(prefix + "_chat.db", store.MIGRATIONS, key)
        agent_config = AgentConfig(
            database=Path(prefix + "_agent.db"), relays=config.relays, database_key=key
        )
        for k, v in config.agent.items():
            setattr(agent_config, k, v)
        try:
            agent = await Agent.open(agent_config)
        except BaseException:
            await db.close()
            raise
        return cls(config, db, agent)

    async def start(self) -> None:
        """Resume: send the outbox, issue unissued calls, reconcile with the agent, listen."""
        if self.started:
            return
        self.started = True
        async with self._lock:
            await self._engine.resume()
            await recovery.reconcile(self._db, self.agent, self._subscriber, self._engine.perform)
        self._tasks.append(asyncio.create_task(self._listen(), name="chat-agent-events"))
        self._tasks.append(asyncio.create_task(self._reintroduce_loop(), name="chat-reintro"))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, self._subscriber.settle(), return_exceptions=True)
        await self.agent.close()
        await self._db.close()

    async def __aenter__(self) -> ChatController:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ how a command runs

    async def _user(self) -> store.UserRow:
        user = await self._db.run(store.active_user)
        if user is None:
            raise ChatError("no user profile yet: create one first")
        return user

    async def _change(self, tx: Callable[[sqlite3.Connection], tuple[T, Effects]]) -> T:
        """Run a state change (under the lock), then carry out its effects."""
        async with self._lock:
            result, fx = await self._db.run(tx)
            await self._engine.perform(fx)
        return result

    async def _read(self, read: Callable[[sqlite3.Connection], T]) -> T:
        return await self._db.run(read)

    # ------------------------------------------------------------ users

    async def active_user(self) -> cev.User | None:
        user = await self._db.run(store.active_user)
        return views.user(user) if user else None

    async def create_user(self, display_name: str, full_name: str = "") -> cev.User:
        profile(display_name, full_name)
        user = await self._db.run(lambda c: store.insert_user(c, display_name, full_name))
        return views.user(user)

    # ------------------------------------------------------------ contacts

    async def create_invitation(self, timeout: float = 30.0) -> tuple[int, str | None]:
        """A one-time invitation link (`/c`). Returns (connection id, link or None if the
        relay is unreachable: then InvitationReady follows when it is made)."""
        user = await self._user()
        async with self._lock:
            connection_id, fx = await self._db.run(lambda c: contacts.create_invitation(c, user))
            fut = self._engine.waiter(f"invitation:{connection_id}")
            await self._engine.perform(fx)
        link = await self._engine.wait(fut, timeout)
        return connection_id, link if isinstance(link, str) else None

    async def connect(self, link: str) -> int:
        """Join a contact's invitation link (`/c LINK`); ContactConnected follows."""
        user = await self._user()
        from parley.protocol.agent import EnvelopeError, check_link

        try:
            check_link(link)
        except EnvelopeError as e:
            raise ChatError(str(e)) from e
        return await self._change(lambda c: contacts.connect(c, user, link))

    async def contacts(self) -> list[cev.Contact]:
        user = await self._user()
        return await self._read(lambda c: contacts.listed(c, user))

    async def send_contact_message(
        self, name: str, text: str, quote: int | None = None
    ) -> cev.ChatItem:
        """Send `text` to a contact; `quote`: the id of an item of that chat it replies to."""
        user = await self._user()
        return await self._change(lambda c: items.send_text(c, user, text, quote, contact=name))

    async def delete_contact(self, name: str) -> None:
        user = await self._user()
        async with self._lock:
            conns, view = await self._db.run(lambda c: contacts.delete(c, user, name))
            for agent_conn in conns:
                await self._engine.delete_agent_connection(agent_conn)
        self.events.put_nowait(cev.ContactDeleted(view))

    async def update_profile(self, display_name: str, full_name: str = "") -> cev.User:
        """Change our profile (`/p NAME`); announced to every contact and group (x.info),
        sent like every message (the outbox, in the same transaction). UserProfileUpdated
        follows (nothing, if the profile is the same)."""
        user = await self._user()
        profile(display_name, full_name)
        return await self._change(lambda c: profiles.update_user(c, user, display_name, full_name))

    # ------------------------------------------------------------ the long-term address

    async def create_address(self, timeout: float = 30.0) -> str:
        """Our long-term contact address (`/ad`): a link many people can use; the same
        one after restarts, until `delete_address`. UserContactLinkCreated follows.
        ChatError if the relay did not answer within `timeout` (the link is made later,
        and UserContactLinkCreated says so) or if there is an address already."""
        user = await self._user()
        return await self._make_link(lambda c: addresses.create(c, user), timeout)

    async def _make_link(
        self, tx: Callable[[sqlite3.Connection], tuple[int, Effects]], timeout: float
    ) -> str:
        async with self._lock:
            link_id, fx = await self._db.run(tx)
            fut = self._engine.waiter(addresses.address_key(link_id))
            await self._engine.perform(fx)
        link = await self._engine.wait(fut, timeout)
        if not isinstance(link, str):
            raise ChatError("the link is not made yet (is the relay reachable?); it follows")
        return link

    async def show_address(self) -> cev.AddressView | None:
        """The address (`/sa`), with its auto-accept setting; None if there is none."""
        user = await self._user()
        return await self._read(lambda c: addresses.show(c, user))

    async def delete_address(self) -> None:
        """Delete the address (`/da`): its link stops working; contacts made stay."""
        user = await self._user()
        await self._change(lambda c: (None, addresses.delete(c, user)))

    async def set_auto_accept(self, on: bool, welcome: str | None = None) -> cev.AddressView:
        """Accept contact requests automatically (`/auto_accept on|off [welcome]`), and
        send `welcome` to each new contact once connected."""
        user = await self._user()
        if welcome is not None:
            text_message(welcome)  # can it be sent?
        return await self._read(lambda c: addresses.set_auto_accept(c, user, on, welcome))

    async def contact_requests(self) -> list[cev.ContactRequestView]:
        """Contact requests waiting for an answer."""
        user = await self._user()
        return await self._read(lambda c: addresses.pending(c, user))

    async def accept_contact_request(self, request_id: int) -> cev.Contact:
        """Accept a contact request (`/ac NAME`): ContactConnected follows."""
        user = await self._user()
        return await self._change(lambda c: addresses.accept(c, user, request_id))

    async def reject_contact_request(self, request_id: int) -> None:
        """Reject a contact request (`/rc NAME`)."""
        user = await self._user()
        await self._change(lambda c: (None, addresses.reject(c, user, request_id)))

    async def contact_request_named(self, name: str) -> cev.ContactRequestView:
        """The waiting contact request with this local name (what `/ac NAME` names)."""
        user = await self._user()
        return await self._read(
            lambda c: addresses.request_view(addresses.request_named(c, user, name))
        )

    # ------------------------------------------------------------ groups

    async def create_group(self, name: str, full_name: str = "") -> cev.Group:
        user = await self._user()
        groups.check_profile(name, full_name)
        return await self._read(lambda c: groups.create(c, user, name, full_name))

    async def groups(self) -> list[cev.Group]:
        user = await self._user()
        return await self._read(lambda c: groups.listed(c, user))

    async def add_member(
        self, group_name: str, contact_name: str, role: str = "member"
    ) -> cev.Member:
        """Invite a contact (`/a group contact [role]`); the host side of step 1."""
        user = await self._user()
        if role not in ("admin", "member", "observer"):
            raise ChatError(f"unknown role {role} (admin, member or observer)")
        return await self._change(
            lambda c: groups.add_member(c, user, group_name, contact_name, role)
        )

    async def join_group(self, group_name: str) -> cev.Group:
        """Accept a group invitation (`/j group`): step 2, join the host's link."""
        user = await self._user()
        return await self._change(lambda c: groups.join(c, user, group_name))

    async def members(self, group_name: str) -> list[cev.Member]:
        user = await self._user()
        return await self._read(lambda c: groups.members(c, user, group_name))

    async def send_group_message(
        self, group_name: str, text: str, quote: int | None = None
    ) -> cev.ChatItem:
        """Send `text` to a group; `quote`: the id of an item of that group it replies to."""
        user = await self._user()
        return await self._change(lambda c: items.send_text(c, user, text, quote, group=group_name))

    # ------------------------------------------------------------ items

    async def update_item(self, item_id: int, text: str) -> cev.ChatItem:
        """Edit our own message (x.msg.update); ChatItemUpdated follows here and there."""
        user = await self._user()
        return await self._change(lambda c: items.update(c, user, item_id, text))

    async def delete_item(self, item_id: int, broadcast: bool = False) -> cev.ChatItem:
        """Delete an item for ourselves, or (`broadcast`) our own message for everyone."""
        user = await self._user()
        return await self._change(lambda c: items.delete(c, user, item_id, broadcast))

    async def moderate_item(self, item_id: int) -> cev.ChatItem:
        """(group admin, owner) delete a member's message for everyone."""
        user = await self._user()
        return await self._change(lambda c: items.moderate(c, user, item_id))

    async def react(self, item_id: int, emoji: str, add: bool = True) -> cev.ChatItem:
        """Add (or remove) our reaction to an item (x.msg.react)."""
        user = await self._user()
        return await self._change(lambda c: items.react(c, user, item_id, emoji, add))

    async def item_history(self, item_id: int) -> list[tuple[int, str, float]]:
        """(edit, text, when) of every version of an item, the original (0) first."""
        user = await self._user()

        def read(c: sqlite3.Connection) -> list[tuple[int, str, float]]:
            items.own_item(c, user, item_id)
            return store.item_versions(c, item_id)

        return await self._read(read)

    async def item_deliveries(self, item_id: int) -> list[cev.MemberDelivery]:
        """A sent group item's delivery to each member (`items.delivery_settled`)."""
        user = await self._user()
        return await self._read(lambda c: items.member_deliveries(c, user, item_id))

    async def find_item(
        self,
        *,
        contact: str | None = None,
        group: str | None = None,
        text: str,
        own: bool | None,
        author: str | None = None,
    ) -> cev.ChatItem:
        """The latest message of a chat whose text starts with `text`: ours (`own`), or
        not (in a group, by `author` if given), or anyone's (`own` None); the terminal
        names items so (`! @bob (old) new`)."""
        for item in reversed(await self.chat_items(contact=contact, group=group, count=200)):
            mine = item.direction == "snd"
            if own is not None and mine != own:
                continue
            if author is not None and (mine or item.author is None or item.author.name != author):
                continue
            live = item.content_type == "text" and not item.deleted
            if live and item.text.startswith(text):
                return item
        raise ChatError(f"no message starting with {text!r}" if text else "no such message")

    async def sync_ratchet(
        self,
        *,
        contact: str | None = None,
        group: str | None = None,
        member: str | None = None,
        force: bool = False,
    ) -> str:
        """Re-negotiate the encryption with a contact or a group member (`/sync`): the
        state (started, agreed, ...); RatchetSync events follow, then "encryption
        re-negotiated". A re-negotiation under way is left alone unless `force`."""
        user = await self._user()
        agent_conn = await self._read(lambda c: items.sync_target(c, user, contact, group, member))
        try:
            return await self.agent.synchronize_ratchet(agent_conn, force)
        except AgentError as e:
            raise ChatError(str(e)) from e

    async def set_receipts(
        self,
        on: bool | None,
        *,
        contact: str | None = None,
        group: str | None = None,
        everyone: str | None = None,
    ) -> None:
        """Delivery receipts: for one contact or group (`on` None: follow the default), or
        the user's default for `everyone` = "contacts" or "groups" (clearing overrides)."""
        user = await self._user()
        setting = items.RECEIPTS
        await self._read(
            lambda c: items.set_chat_setting(c, user, setting, on, contact, group, everyone)
        )

    async def set_full_delete(
        self, on: bool | None, *, contact: str | None = None, group: str | None = None
    ) -> None:
        """Full deletion (default off): a received deletion for everyone removes the item, not
        marks it; for a contact or group (None: the default), or (neither) all chats."""
        user = await self._user()
        setting, everyone = items.FULL_DELETE, None if contact or group else "all"
        await self._read(
            lambda c: items.set_chat_setting(c, user, setting, on, contact, group, everyone)
        )

    async def leave_group(self, group_name: str) -> None:
        await self._group_farewell(group_name, delete=False)

    async def delete_group(self, group_name: str) -> None:
        await self._group_farewell(group_name, delete=True)

    async def _group_farewell(self, group_name: str, delete: bool) -> None:
        user = await self._user()
        await self._delete_after_sent(lambda c: groups.farewell(c, user, group_name, delete))

    async def remove_member(self, group_name: str, member_name: str) -> None:
        user = await self._user()
        await self._delete_after_sent(
            lambda c: groups.remove_member(c, user, group_name, member_name)
        )

    async def _delete_after_sent(
        self, tx: Callable[[sqlite3.Connection], tuple[Effects, list[str]]]
    ) -> None:
        """A change that ends agent connections: deleted once its messages on them are
        sent (the agent sends in order)."""
        async with self._lock:
            fx, conns = await self._db.run(tx)
            await self._engine.perform(fx)
            self._tasks.append(asyncio.create_task(self._engine.delete_after_sent(conns)))

    async def update_group_profile(
        self, group_name: str, display_name: str, full_name: str = ""
    ) -> cev.Group:
        """(an owner) Change the group's profile (`/gp #g NAME [full name]`); announced to
        the members (x.grp.info). GroupUpdated follows."""
        user = await self._user()
        groups.check_profile(display_name, full_name)
        return await self._change(
            lambda c: profiles.update_group(c, user, group_name, display_name, full_name)
        )

    async def set_member_role(self, group_name: str, member_name: str, role: str) -> cev.Member:
        """Change a member's role (`/mr #g NAME ROLE`): owners and admins, for members
        below their own role, to a role not above it; announced (x.grp.mem.role)."""
        user = await self._user()
        return await self._change(lambda c: groups.set_role(c, user, group_name, member_name, role))

    # ------------------------------------------------------------ group links

    async def create_group_link(
        self, group_name: str, role: str = "member", timeout: float = 30.0
    ) -> str:
        """A link for the group (`/create link #g [role]`): whoever joins it is accepted
        and becomes a member with `role`, then is introduced to every member."""
        user = await self._user()
        return await self._make_link(
            lambda c: group_links.create(c, user, group_name, role), timeout
        )

    async def group_link(self, group_name: str) -> cev.GroupLinkView | None:
        user = await self._user()
        return await self._read(lambda c: group_links.show(c, user, group_name))

    async def set_group_link_role(self, group_name: str, role: str) -> cev.GroupLinkView:
        user = await self._user()
        return await self._read(lambda c: group_links.set_role(c, user, group_name, role))

    async def delete_group_link(self, group_name: str) -> None:
        user = await self._user()
        await self._change(lambda c: (None, group_links.delete(c, user, group_name)))

    async def chat_items(
        self, *, contact: str | None = None, group: str | None = None, count: int = 50
    ) -> list[cev.ChatItem]:
        user = await self._user()

        def read(c: sqlite3.Connection) -> list[cev.ChatItem]:
            contact_id = contacts.named(c, user, contact).contact_id if contact else None
            group_id = groups.named(c, user, group).group_id if group else None
            ids = store.last_item_ids(
                c, count, user_id=user.user_id, contact_id=contact_id, group_id=group_id
            )
            return [views.item(c, item_id) for item_id in ids]

        return await self._read(read)

    # ------------------------------------------------------------ status

    async def status(self) -> tuple[PendingReport, list[dict[str, Any]]]:
        """Pending agent commands and deliveries, and pending continuations (with names)."""
        report = await self.agent.pending()
        return report, await self._read(views.open_commands)

    async def describe_agent_connection(self, agent_conn_id: str) -> str:
        return await self._read(lambda c: views.agent_connection(c, agent_conn_id))

    # ------------------------------------------------------------ agent events

    async def _listen(self) -> None:
        async for e in self.agent.events():
            with failure_logged(log, "handling agent event %r failed", e):
                async with self._lock:
                    await self._subscriber.handle(e)

    # ------------------------------------------------------------ re-introductions

    async def _reintroduce_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.intro_check_interval)
            with failure_logged(log, "re-introduction check failed"):
                async with self._lock:
                    await self.reintroduce_stale()

    async def reintroduce_stale(self, older_than: float | None = None) -> int:
        """Host: introduce again every pair that made no progress in time (each
        introduction's own wait, see `intro_delay`; or `older_than` seconds for all, when
        given); returns how many (`recovery.reintroduce_stale`)."""
        tx = functools.partial(
            recovery.reintroduce_stale,
            config=self.config,
            now=store.now(),
            older_than=older_than,
        )
        count, fx = await self._db.run(tx)
        await self._engine.perform(fx)
        return count
