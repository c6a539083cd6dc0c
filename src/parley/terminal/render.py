"""Plain words for what the chat knows: pure functions from views to lines and tables.

Nothing here does I/O or reads a clock; `now` is passed in, so the output of /ms and
/status can be tested exactly.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text

from parley.agent.agent import PendingReport
from parley.chat import events as cev
from parley.chat.commands import quote_name
from parley.protocol.address import RelayAddress

# what the agent's command kinds do, in plain words
COMMAND_KINDS: dict[str, str] = {
    "NEW": "create a queue for a new connection",
    "JOIN": "join the other side's link",
    "ALLOW": "accept the other side's confirmation",
    "SECURE": "secure the queue",
    "ACK": "acknowledge a received message",
    "DEL": "delete the connection's queues",
}

# member statuses of a member still on the way, in plain words
CONNECTING_STAGES: dict[str, str] = {
    "memInvited": "invited",
    "memAccepted": "accepted the invitation",
    "memIntroduced": "introduced",
    "memIntroInvited": "introduced, links sent",
    "memAnnounced": "announced",
}
CONNECTED = ("memConnected", "memComplete", "memCreator")


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with control characters written as escapes (`\\n`, `\\x1b`), so that what
    others send (names, messages) cannot move the cursor, recolour the terminal or fake
    extra lines. Tabs stay; newlines stay if `keep_newlines`."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == "\t" or (keep_newlines and ch == "\n"):
            out.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            out.append(repr(ch)[1:-1])
        else:
            out.append(ch)  # other non-printables (formats, private use) are harmless
    return "".join(out)


def duration(seconds: float) -> str:
    """A short, rounded duration: '12 s', '3 min', '2 h', '4 d'."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    if s < 86400:
        return f"{round(s / 3600)} h"
    return f"{round(s / 86400)} d"


def next_retry(next_try: float, now: float) -> str:
    """'next in 12 s', or 'retrying now' when the next try is due."""
    left = next_try - now
    return f"next in {duration(left)}" if left >= 0.5 else "retrying now"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# ---------------------------------------------------------------- pending work


@dataclass(frozen=True)
class PendingWork:
    """One pending agent command or delivery, on one agent connection."""

    kind: str  # "command" or "delivery"
    what: str  # the command kind (JOIN, ...) or "message N"
    conn_id: str
    attempts: int
    last_error: str | None
    next_try: float


def pending_work(report: PendingReport) -> list[PendingWork]:
    work = [
        PendingWork("command", c.kind, c.conn_id, c.attempts, c.last_error, c.next_try)
        for c in report.commands
    ]
    work += [
        PendingWork(
            "delivery", f"message {d.msg_id}", d.conn_id, d.attempts, d.last_error, d.next_try
        )
        for d in report.deliveries
    ]
    return work


def work_for_member(
    group: str,
    member: cev.Member,
    work: Sequence[PendingWork],
    descriptions: Mapping[str, str],
) -> list[PendingWork]:
    """The pending work on a member's connections, matched by the chat's description of
    each agent connection (`#team member dan (group)` / `(direct)`)."""
    prefix = f"#{group} member {member.name} ("
    return [w for w in work if descriptions.get(w.conn_id, "").startswith(prefix)]


def summarize_work(work: Sequence[PendingWork], now: float) -> str:
    """'3 attempts, next in 12 s, last error: timeout' for the most retried job."""
    if not work:
        return ""
    worst = max(work, key=lambda w: (w.attempts, -w.next_try))
    parts: list[str] = []
    if len(work) > 1:
        parts.append(f"{len(work)} pending jobs")
    if worst.attempts == 0:
        parts.append("in progress")
    else:
        parts.append(plural(worst.attempts, "attempt"))
        parts.append(next_retry(worst.next_try, now))
    if worst.last_error:
        parts.append(f"last error: {worst.last_error}")
    return ", ".join(parts)


# ---------------------------------------------------------------- members (/ms)


def member_line(
    group: str, member: cev.Member, work: Sequence[PendingWork] = (), now: float = 0.0
) -> str:
    """One member, with how its connection is doing: '#team: member dan is connecting
    (introduced, 3 attempts, next in 12 s)'."""
    g = f"#{group}"
    if member.category == "user":
        state = "" if member.status in CONNECTED else f", {_member_state(member)}"
        return f"{g}: you are {member.name}, {member.role}{state}"
    title = "host" if member.category == "host" else "member"
    who = f"{title} {member.name}" + (f" ({member.role})" if member.role != "member" else "")
    if member.status == "memLeft":
        return f"{g}: {who} has left"
    if member.status == "memRemoved":
        return f"{g}: {who} was removed"
    if member.status in CONNECTED:
        return f"{g}: {who} is connected"
    if member.connection == "failed":
        return f"{g}: {who}: connection failed ({member.last_error or 'no reason given'})"
    summary = summarize_work(work, now)
    if member.status == "memInvited":
        if member.category == "host":
            return f"{g}: {who} invited you (/j {quote_name(group)} to join)"
        details = [summary] if summary else []
        return f"{g}: {who} is invited ({', '.join([*details, 'has not joined yet'])})"
    details = [CONNECTING_STAGES.get(member.status, member.status)]
    if summary:
        details.append(summary)
    elif member.last_error:
        details.append(f"last error: {member.last_error}")
    return f"{g}: {who} is connecting ({', '.join(details)})"


def _member_state(member: cev.Member) -> str:
    if member.status == "memLeft":
        return "left"
    if member.status == "memRemoved":
        return "removed"
    return CONNECTING_STAGES.get(member.status, member.status)


def member_lines(
    group: str,
    members: Sequence[cev.Member],
    work: Sequence[PendingWork] = (),
    descriptions: Mapping[str, str] | None = None,
    now: float = 0.0,
) -> list[str]:
    """/ms: you first, then every other member with its state and pending work."""
    if not members:
        return [f"#{group}: no members"]
    descriptions = descriptions or {}
    ordered = sorted(members, key=lambda m: (m.category != "user", m.member_row))
    return [
        member_line(group, m, work_for_member(group, m, work, descriptions), now) for m in ordered
    ]


# ---------------------------------------------------------------- status (/status)


@dataclass(frozen=True)
class StatusRow:
    kind: str
    what: str
    attempts: str
    last_error: str
    next_retry: str


def status_rows(
    report: PendingReport,
    continuations: Sequence[Mapping[str, Any]],
    descriptions: Mapping[str, str],
    now: float,
) -> list[StatusRow]:
    """/status: one row per pending agent command, delivery and chat continuation."""
    rows: list[StatusRow] = []
    for w in pending_work(report):
        target = descriptions.get(w.conn_id) or f"connection {w.conn_id}"
        if w.kind == "command":
            kind = f"command {w.what}"
            what = f"{COMMAND_KINDS.get(w.what, w.what.lower())}: {target}"
        else:
            kind = "delivery"
            what = f"{w.what} to {target}"
        retry = next_retry(w.next_try, now)
        rows.append(
            StatusRow(
                kind,
                what,
                str(w.attempts),
                w.last_error or "",
                retry.removeprefix("next ") if w.attempts else "in progress",
            )
        )
    for sub in report.subscriptions:
        target = descriptions.get(sub.conn_id) or f"connection {sub.conn_id}"
        rows.append(
            StatusRow("subscription", f"receiving on {target}", "", sub.last_error or "", sub.state)
        )
    for k in continuations:
        function = str(k.get("function", "?")).replace("_", " ")
        state = "not issued" if k.get("status") == "new" else "waiting"
        rows.append(
            StatusRow("chat step", f"{function}: {k.get('connection', '?')}", "", "", state)
        )
    return rows


def net_line(report: PendingReport, now: float) -> str | None:
    """What the subscription safety net did, when it has found or failed anything."""
    net = report.net
    if net is None or not (net.found or net.errors):
        return None
    parts = [f"safety net: {net.checks} queue checks, {net.found} waiting messages found"]
    if net.errors:
        parts.append(f"{net.errors} checks failed (last: {net.last_error})")
    if net.recent:
        parts.append(f"last found {max(0, round(now - net.recent[-1].at))} s ago")
    return "; ".join(parts)


def status_table(rows: Sequence[StatusRow]) -> Table:
    table = Table(title="pending work", title_justify="left", expand=False)
    table.add_column("kind", no_wrap=True)
    table.add_column("for", min_width=36)
    table.add_column("attempts", justify="right", no_wrap=True)
    table.add_column("last error")
    table.add_column("next retry", no_wrap=True)
    for r in rows:  # Text: no markup or control codes from names and errors
        table.add_row(
            *(Text(printable(v)) for v in (r.kind, r.what, r.attempts, r.last_error, r.next_retry))
        )
    return table


def status_lines(rows: Sequence[StatusRow]) -> list[str]:
    """The same rows as plain lines, for scripts and non-terminals."""
    if not rows:
        return [NOTHING_PENDING]
    lines = []
    for r in rows:
        parts = [f"{r.kind}: {r.what}"]
        if r.attempts and r.attempts != "0":
            parts.append(plural(int(r.attempts), "attempt"))
        if r.last_error:
            parts.append(f"last error: {r.last_error}")
        if r.next_retry:
            parts.append(r.next_retry)
        lines.append(", ".join(parts))
    return lines


NOTHING_PENDING = "nothing pending: every command and message has gone through"


# ---------------------------------------------------------------- contacts, groups, items


def contact_line(contact: cev.Contact) -> str:
    full = f" ({contact.full_name})" if contact.full_name else ""
    state = {"ready": "connected"}.get(contact.status, contact.status)
    return f"@{quote_name(contact.name)}{full}: {state}"


def contact_info_lines(contact: cev.Contact) -> list[str]:
    """/i @contact: the profile and the connection."""
    state = {"ready": "connected", "connecting": "connecting"}.get(contact.status, contact.status)
    full = f" ({contact.full_name})" if contact.full_name else ""
    lines = [f"@{quote_name(contact.name)}: contact, {state}"]
    lines.append(f"  profile: {contact.display_name}{full}")
    return lines


def member_info_lines(group: str, member: cev.Member) -> list[str]:
    """/i #group member: the profile, the role and the connection."""
    full = f" ({member.full_name})" if member.full_name else ""
    title = {"user": "you", "host": "host"}.get(member.category, "member")
    lines = [f"#{quote_name(group)} {member.name}: {title}, {member.role}"]
    lines.append(f"  profile: {member.name}{full}")
    if member.status in CONNECTED:
        state = "connected"
    elif member.status == "memLeft":
        state = "left the group"
    elif member.status == "memRemoved":
        state = "removed from the group"
    else:
        state = "connecting (" + CONNECTING_STAGES.get(member.status, member.status) + ")"
    if member.connection is not None and member.category != "user":
        state += f"; group connection {member.connection}"
    lines.append(f"  status: {state}")
    if member.last_error:
        lines.append(f"  last error: {member.last_error}")
    return lines


def auto_accept_line(address: cev.AddressView) -> str:
    """/sa and /auto_accept: whether contact requests are accepted by themselves."""
    if not address.auto_accept:
        return "auto-accept is off: /ac NAME accepts a request, /rc NAME rejects it"
    welcome = f", welcome message: {address.welcome}" if address.welcome else ""
    return f"auto-accept is on{welcome}"


def group_line(group: cev.Group) -> str:
    full = f" ({group.full_name})" if group.full_name else ""
    name = quote_name(group.name)
    state = {
        "active": "active",
        "invited": f"you are invited: /j {name} to join",
        "joining": "joining",
        "left": "you left",
    }.get(group.status, group.status)
    return f"#{name}{full}: {state}"


def item_line(item: cev.ChatItem, *, with_time: bool = False) -> str:
    """A message as a line: 'bob> hi', '@bob hi' (sent), '#team cath> hi'."""
    text = cev.describe_item(item)
    if not with_time:
        return text
    t = time.localtime(item.created_at)
    return time.strftime("%H:%M ", t) + text


def event_line(event: cev.ChatEvent, *, verbose: bool = True) -> str | None:
    """An event in plain words; None for routine noise when not `verbose` (a message
    reported sent)."""
    match event:
        case cev.ChatItemStatus(status="sent") if not verbose:
            return None
        case cev.ChatItemStatus(item_id, "rcvd", _):
            return f"message {item_id}: received ✓✓"
        case cev.MemberConnecting(group, member):
            stage = CONNECTING_STAGES.get(member.status, member.status)
            return f"#{group.name}: member {member.name} is connecting ({stage})"
        case cev.GroupDeleted(group, by):
            # a deleted group's local name gets "#<id>" appended to free the name
            name = re.sub(r"#\d+$", "", group.name)
            return f"#{name}: {by.name if by else 'you'} deleted the group"
        case cev.RelayStatus(relay, up, n):
            where = relay_name(relay)
            if up:
                return f"relay {where} is reachable ({plural(n, 'connection')})"
            return f"relay {where} is unreachable: retrying ({plural(n, 'connection')} waiting)"
    return cev.describe(event)


def relay_name(address: str) -> str:
    """host:port of a relay address (the whole text if it does not parse)."""
    try:
        a = RelayAddress.parse(address)
    except ValueError:
        return address
    return f"{a.host}:{a.port}"
