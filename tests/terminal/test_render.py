"""The renderers of /ms and /status: pure functions from views to lines and tables."""

from __future__ import annotations

import io

from rich.console import Console

from parley.agent.agent import PendingCommand, PendingDelivery, PendingReport
from parley.chat import events as cev
from parley.terminal import render

NOW = 1_000_000.0


def member(
    row: int,
    name: str,
    status: str,
    *,
    category: str = "invitee",
    role: str = "member",
    connection: str | None = None,
    last_error: str | None = None,
) -> cev.Member:
    return cev.Member(
        1, row, f"id{row}", name, "", role, category, status, connection, last_error, None
    )


DESCRIPTIONS = {
    "c-dan-g": "#team member dan (group)",
    "c-dan-d": "#team member dan (direct)",
    "c-eve": "#team member eve (group)",
    "c-bob": "contact bob",
    "c-other": "#other member dan (group)",
}


def report() -> PendingReport:
    return PendingReport(
        commands=[
            PendingCommand("k1", "c-dan-g", "JOIN", None, 3, "relay unreachable", NOW + 12.2),
            PendingCommand("k2", "c-dan-d", "JOIN", None, 1, None, NOW + 3),
            PendingCommand("k3", "c-eve", "NEW", None, 0, None, NOW),
            PendingCommand("k4", "c-other", "JOIN", None, 9, "other group", NOW + 1),
        ],
        deliveries=[PendingDelivery("c-bob", 7, 2, "quota exceeded", NOW + 90, NOW + 86400)],
    )


def test_member_lines() -> None:
    members = [
        member(5, "dan", "memIntroInvited", category="pre"),
        member(1, "alice", "memCreator", category="user", role="owner"),
        member(2, "bob", "memConnected", role="admin"),
        member(3, "cath", "memComplete", category="post"),
        member(6, "eve", "memAnnounced", category="post"),
        member(7, "fay", "memInvited"),
        member(8, "gus", "memLeft"),
        member(9, "hal", "memRemoved"),
        member(10, "ivy", "memIntroduced", connection="failed", last_error="link expired"),
        member(11, "jon", "memAccepted", last_error="timeout"),
    ]
    work = render.pending_work(report())
    lines = render.member_lines("team", members, work, DESCRIPTIONS, NOW)
    assert lines == [
        "#team: you are alice, owner",
        "#team: member bob (admin) is connected",
        "#team: member cath is connected",
        "#team: member dan is connecting "
        "(introduced, links sent, 2 pending jobs, 3 attempts, next in 12 s, "
        "last error: relay unreachable)",
        "#team: member eve is connecting (announced, in progress)",
        "#team: member fay is invited (has not joined yet)",
        "#team: member gus has left",
        "#team: member hal was removed",
        "#team: member ivy: connection failed (link expired)",
        "#team: member jon is connecting (accepted the invitation, last error: timeout)",
    ]


def test_member_line_matches_the_brief_example() -> None:
    work = [render.PendingWork("command", "JOIN", "c-dan-g", 3, None, NOW + 12)]
    line = render.member_line("team", member(5, "dan", "memIntroduced", category="pre"), work, NOW)
    assert line == "#team: member dan is connecting (introduced, 3 attempts, next in 12 s)"


def test_member_lines_from_the_invitee_side() -> None:
    members = [
        member(1, "cath", "memInvited", category="user", role="admin"),
        member(2, "alice", "memInvited", category="host", role="owner"),
    ]
    assert render.member_lines("team", members) == [
        "#team: you are cath, admin, invited",
        "#team: host alice (owner) invited you (/j team to join)",
    ]
    assert render.member_lines("team", []) == ["#team: no members"]


def test_work_is_matched_to_members_of_the_right_group_only() -> None:
    work = render.pending_work(report())
    dan = member(5, "dan", "memIntroduced", category="pre")
    assert {w.conn_id for w in render.work_for_member("team", dan, work, DESCRIPTIONS)} == {
        "c-dan-g",
        "c-dan-d",
    }
    assert [w.conn_id for w in render.work_for_member("other", dan, work, DESCRIPTIONS)] == [
        "c-other"
    ]
    dana = member(12, "dana", "memIntroduced", category="pre")  # a longer name, same prefix
    assert render.work_for_member("team", dana, work, DESCRIPTIONS) == []


def test_durations() -> None:
    assert render.duration(0.2) == "0 s"
    assert render.duration(59) == "59 s"
    assert render.duration(150) == "2 min"
    assert render.duration(7200) == "2 h"
    assert render.duration(3 * 86400) == "3 d"
    assert render.next_retry(NOW - 5, NOW) == "retrying now"
    assert render.next_retry(NOW + 12.4, NOW) == "next in 12 s"


CONTINUATIONS = [
    {
        "command_id": "cmd:1",
        "function": "contact_joined",
        "status": "issued",
        "connection": "contact bob",
        "created_at": NOW - 3,
    },
    {
        "command_id": "cmd:2",
        "function": "member_invitation_created",
        "status": "new",
        "connection": "#team member fay (group)",
        "created_at": NOW - 1,
    },
]


def test_status_rows() -> None:
    rows = render.status_rows(report(), CONTINUATIONS, DESCRIPTIONS, NOW)
    assert rows[0] == render.StatusRow(
        "command JOIN",
        "join the other side's link: #team member dan (group)",
        "3",
        "relay unreachable",
        "in 12 s",
    )
    assert rows[2] == render.StatusRow(
        "command NEW",
        "create a queue for a new connection: #team member eve (group)",
        "0",
        "",
        "in progress",
    )
    assert rows[4] == render.StatusRow(
        "delivery", "message 7 to contact bob", "2", "quota exceeded", "in 2 min"
    )
    assert rows[5] == render.StatusRow(
        "chat step", "contact joined: contact bob", "", "", "waiting"
    )
    assert rows[6].next_retry == "not issued"
    assert len(rows) == 7


def test_status_rows_name_unknown_connections() -> None:
    r = PendingReport([PendingCommand("k", "zzz", "DEL", None, 1, None, NOW - 1)], [])
    (row,) = render.status_rows(r, [], {}, NOW)
    assert row.what == "delete the connection's queues: connection zzz"
    assert row.next_retry == "retrying now"


def test_status_table_and_lines() -> None:
    rows = render.status_rows(report(), CONTINUATIONS, DESCRIPTIONS, NOW)
    table = render.status_table(rows)
    assert [col.header for col in table.columns] == [
        "kind",
        "for",
        "attempts",
        "last error",
        "next retry",
    ]
    assert table.row_count == len(rows)
    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None).print(table)
    text = buf.getvalue()
    assert "relay unreachable" in text and "in 12 s" in text and "message 7 to contact bob" in text

    lines = render.status_lines(rows)
    assert lines[0] == (
        "command JOIN: join the other side's link: #team member dan (group), 3 attempts, "
        "last error: relay unreachable, in 12 s"
    )
    assert lines[2] == (
        "command NEW: create a queue for a new connection: #team member eve (group), in progress"
    )
    assert render.status_lines([]) == [render.NOTHING_PENDING]


def test_contact_group_and_event_lines() -> None:
    assert render.contact_line(cev.Contact(1, "bob", "bob", "Bob B", "ready")) == (
        "@bob (Bob B): connected"
    )
    assert render.contact_line(cev.Contact(2, "Bo Jo", "Bo Jo", "", "connecting")) == (
        "@'Bo Jo': connecting"
    )
    assert render.group_line(cev.Group(1, "team", "team", "", "invited")) == (
        "#team: you are invited: /j team to join"
    )
    assert render.group_line(cev.Group(1, "team", "team", "The Team", "active")) == (
        "#team (The Team): active"
    )
    sent = cev.ChatItemStatus(4, "sent")
    assert render.event_line(sent, verbose=False) is None
    assert render.event_line(sent) == "message 4: sent"
    assert render.event_line(cev.ChatItemStatus(4, "error", "expired"), verbose=False) == (
        "message 4: error (expired)"
    )
    g = cev.Group(1, "team", "team", "", "active")
    joining = cev.MemberConnecting(g, member(5, "dan", "memIntroduced", category="pre"))
    assert render.event_line(joining) == "#team: member dan is connecting (introduced)"
    announced = cev.MemberAnnounced(g, member(5, "cath", "memAnnounced", category="post"))
    assert render.event_line(announced) == "#team: new member cath is connecting"
    joined = cev.JoinedGroupMember(g, member(3, "bob", "memConnected"))
    assert render.event_line(joined) == "#team: bob joined the group"
    up = cev.RelayStatus("parley://" + "A" * 43 + "@relay.example:5223", True, 2)
    assert render.event_line(up) == "relay relay.example:5223 is reachable (2 connections)"
    down = cev.RelayStatus("nonsense", False, 1)
    assert (
        render.event_line(down) == "relay nonsense is unreachable: retrying (1 connection waiting)"
    )


def test_a_deleted_group_is_named_as_it_was() -> None:
    gone = cev.GroupDeleted(cev.Group(3, "team#3", "team", "", "deleted"), None)
    assert render.event_line(gone) == "#team: you deleted the group"


def test_what_others_send_cannot_control_the_terminal() -> None:
    assert render.printable("hi\x1b[2J\rthere\nbob: contact is connected") == (
        "hi\\x1b[2J\\rthere\\nbob: contact is connected"
    )
    assert render.printable("two\nlines\ttab", keep_newlines=True) == "two\nlines\ttab"
    assert render.printable("naïve 🙂") == "naïve 🙂"

    from parley.terminal.headless import LinePrinter

    buf = io.StringIO()
    LinePrinter(buf).line("bob> evil\nalice: contact is connected")
    assert buf.getvalue() == "bob> evil\\nalice: contact is connected\n"

    rows = [
        render.StatusRow("delivery", "message 1 to contact [bold]x[/bold]\x1b[31m", "1", "", "")
    ]
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(render.status_table(rows))
    assert "[bold]x[/bold]\\x1b[31m" in out.getvalue()
