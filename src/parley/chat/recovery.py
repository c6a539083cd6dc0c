"""Recovery: catching up with the agent at start (docs/recovery.md §3), and the host's
re-introduction of pairs of members that make no progress.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable

from parley.agent import Agent
from parley.agent.model import READY
from parley.chat import introductions, items, store
from parley.chat.effects import Effects
from parley.chat.model import (
    C_JOINED,
    C_NEW,
    C_READY,
    GONE_MEMBER,
    ITEM_ERROR,
    ITEM_SENT,
    K_MEMBER_GROUP,
    ChatConfig,
    intro_delay,
)
from parley.chat.subscriber import Subscriber
from parley.store import Database

log = logging.getLogger(__name__)


async def reconcile(
    db: Database,
    agent: Agent,
    events: Subscriber,
    perform: Callable[[Effects], Awaitable[None]],
) -> None:
    """After a restart, catch up with what the agent did while events were lost:
    INFO, CON and RSYNC are not replayed, so they are read from the connections' statuses
    (and handled by the subscriber's `on_info`, `on_con` and `on_rsync_status`: a ratchet
    re-synchronisation the chat has not shown, or one still required); a delivery whose
    SENT was lost is marked from the agent's pending report; links made while the host
    connection was not ready are sent, if its CON was handled before a crash and their
    sending was not."""
    statuses = {st.conn_id: st for st in await agent.subscribe_all()}
    for agent_conn, status in await db.run(store.unsettled_connections):
        st = statuses.get(agent_conn)
        if st is None:
            continue
        # a joiner's peer_info is the initiator's INFO: it arrived
        if st.role == "joiner" and st.peer_info is not None and status in (C_NEW, C_JOINED):
            await events.on_info(agent_conn, st.peer_info)
        if st.status == READY:
            await events.on_con(agent_conn)
    for agent_conn, shown in (await db.run(store.rsync_shown)).items():
        st = statuses.get(agent_conn)
        if st is None:
            continue
        if (st.rsync_state, st.rsync_done) != shown or st.rsync_state == "required":
            await events.on_rsync_status(agent_conn, st.rsync_state, st.rsync_done)
    report = await agent.pending()
    pending = {(d.conn_id, d.msg_id) for d in report.deliveries}
    failed = {(d.conn_id, d.msg_id) for d in report.failed}

    def settle(c: sqlite3.Connection) -> Effects:
        fx = Effects()
        for agent_conn, msg_id, _item in store.item_deliveries(c):
            if (agent_conn, msg_id) not in pending:
                status = ITEM_ERROR if (agent_conn, msg_id) in failed else ITEM_SENT
                item_id = store.settle_delivery(c, agent_conn, msg_id, status)
                if item_id is not None:
                    fx.merge(items.delivery_settled(c, item_id, agent_conn, status, ""))
        return fx

    await perform(await db.run(settle))

    def waiting_links(c: sqlite3.Connection) -> Effects:
        fx = items.expire_held(c, store.now())  # (and held changes that waited too long)
        introductions.send_waiting_links(c, None, fx)
        return fx

    await perform(await db.run(waiting_links))


def reintroduce_stale(
    c: sqlite3.Connection, config: ChatConfig, now: float, older_than: float | None
) -> tuple[int, Effects]:
    """Host: introduce again every pair that made no progress in time (each
    introduction's own wait, see `intro_delay`; or `older_than` seconds for all, when
    given); returns how many. By the timer, a newcomer that has not answered since the
    last re-introduction (it is away) gets no more until it says something. (The same
    timer drops the group changes held too long for their message: `items.expire_held`.)"""
    fx = items.expire_held(c, now)
    count = 0
    for intro in store.host_intros_unconnected(c):
        if older_than is not None:
            wait = older_than
        elif intro.retry_delay is not None:
            wait = intro.retry_delay
        else:  # a row from before the delay was stored
            wait = intro_delay(config, intro.attempts)
        if intro.updated_at + wait > now:
            continue
        b, other = store.member(c, intro.re_member), store.member(c, intro.to_member)
        if b is None or other is None or b.status in GONE_MEMBER or other.status in GONE_MEMBER:
            continue
        conn = store.member_connection(c, b.member_row, K_MEMBER_GROUP)
        if conn is None or conn.agent_conn_id is None or conn.status != C_READY:
            continue
        if (
            older_than is None
            and intro.attempts >= 2
            and not store.heard_since(c, intro.group_id, b.member_id, intro.created_at)
        ):
            # the newcomer said nothing since the last re-introduction (it answers
            # each one): it is away, and more would only pile up in its queue
            continue
        store.delete_intro(c, intro.intro_id)
        attempts = intro.attempts + 1
        introductions.introduce(
            c, config, fx, intro.group_id, b, other, conn.agent_conn_id, attempts
        )
        log.info(
            "re-introducing %s to %s (attempt %d, no progress for %.0f s)",
            other.display_name,
            b.display_name,
            attempts,
            now - intro.updated_at,
        )
        count += 1
    return count, fx
