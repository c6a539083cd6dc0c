"""simplex-chat shaped JSON from parley's views and events (no I/O)."""

from __future__ import annotations

import json

from parley.api import responses as r
from parley.chat import events as cev

USER = cev.User(1, "alice", "Alice A")
BOB = cev.Contact(3, "bob", "bob", "Bob B", "ready")
TEAM = cev.Group(2, "team", "team", "The Team", "active")


def member(
    row: int, name: str, category: str, status: str, contact_id: int | None = None
) -> cev.Member:
    role = "owner" if category in ("user", "host") else "member"
    return cev.Member(
        2, row, f"id-{row}", name, "", role, category, status, "ready", None, contact_id
    )


ME = member(1, "alice", "user", "memCreator")
BOB_M = member(2, "bob", "invitee", "memConnected", 3)
MEMBERS = [ME, BOB_M]


def test_user() -> None:
    assert r.user_json(USER) == {
        "userId": 1,
        "localDisplayName": "alice",
        "profile": {"displayName": "alice", "fullName": "Alice A", "localAlias": ""},
        "activeUser": True,
    }


def test_contact() -> None:
    got = r.contact_json(BOB)
    assert got["contactId"] == 3 and got["localDisplayName"] == "bob"
    assert got["profile"] == {"displayName": "bob", "fullName": "Bob B", "localAlias": ""}
    assert got["activeConn"] == {"connStatus": "ready"} and got["contactStatus"] == "active"
    connecting = r.contact_json(cev.Contact(4, "cath", "cath", "", "connecting"))
    assert connecting["activeConn"]["connStatus"] != "ready"


def test_member_and_group_info() -> None:
    got = r.member_json(BOB_M)
    assert got == {
        "groupMemberId": 2,
        "groupId": 2,
        "memberId": "id-2",
        "memberRole": "member",
        "memberCategory": "invitee",
        "memberStatus": "memConnected",
        "localDisplayName": "bob",
        "memberProfile": {"displayName": "bob", "fullName": "", "localAlias": ""},
        "memberContactId": 3,
        "activeConn": {"connStatus": "ready"},
    }
    info = r.group_info_json(TEAM, MEMBERS)
    assert info["groupId"] == 2 and info["localDisplayName"] == "team"
    assert info["groupProfile"] == {"displayName": "team", "fullName": "The Team"}
    assert info["membership"]["memberStatus"] == "memCreator"
    assert "membership" not in r.group_info_json(TEAM)
    group = r.group_json(TEAM, MEMBERS)
    assert [m["localDisplayName"] for m in group["members"]] == ["bob"]  # not the user


def test_timestamps() -> None:
    assert r.timestamp(0) == "1970-01-01T00:00:00.000000Z"
    assert r.timestamp(1700000000.5) == "2023-11-14T22:13:20.500000Z"


def test_chat_items() -> None:
    snd = cev.ChatItem(5, "snd", "hi", "sending", 0.0, contact=BOB, shared_msg_id="m1")
    got = r.chat_item_json(snd)
    assert got["chatDir"] == {"type": "directSnd"}
    assert got["content"] == {"type": "sndMsgContent", "msgContent": {"type": "text", "text": "hi"}}
    assert got["meta"]["itemId"] == 5 and got["meta"]["itemText"] == "hi"
    assert got["meta"]["itemStatus"] == {"type": "sndNew"}
    assert got["meta"]["itemSharedMsgId"] == "m1" and got["meta"]["editable"]

    rcv = cev.ChatItem(6, "rcv", "yo", "received", 0.0, group=TEAM, author=BOB_M)
    got = r.chat_item_json(rcv)
    assert got["chatDir"]["type"] == "groupRcv"
    assert got["chatDir"]["groupMember"]["localDisplayName"] == "bob"
    assert got["content"]["type"] == "rcvMsgContent"
    assert got["meta"]["itemStatus"] == {"type": "rcvNew"}

    sent = r.chat_item_json(cev.ChatItem(7, "snd", "x", "sent", 0.0, group=TEAM))
    assert (
        sent["chatDir"] == {"type": "groupSnd"} and sent["meta"]["itemStatus"]["type"] == "sndSent"
    )
    failed = r.chat_item_json(cev.ChatItem(8, "snd", "x", "error", 0.0, contact=BOB))
    assert failed["meta"]["itemStatus"]["type"] == "sndError"

    info = r.item_chat_info(rcv, MEMBERS)
    assert info is not None and info["type"] == "group"
    assert r.item_chat_info(snd) == {"type": "direct", "contact": r.contact_json(BOB)}
    chat = r.chat_json(r.direct_info(BOB), [snd])
    assert chat["chatStats"]["unreadCount"] == 0 and len(chat["chatItems"]) == 1


def test_errors_and_envelope() -> None:
    err = r.command_error("nope")
    assert err == {
        "type": "chatCmdError",
        "chatError": {"type": "error", "errorType": {"type": "commandError", "message": "nope"}},
    }
    assert r.no_active_user()["chatError"]["errorType"] == {"type": "noActiveUser"}
    store = r.store_error("contactNotFound", "no contact 9", contactId=9)
    assert store["chatError"]["storeError"]["type"] == "contactNotFound"
    assert store["chatError"]["storeError"]["contactId"] == 9
    assert json.loads(r.envelope(err, "7")) == {"corrId": "7", "resp": err}
    assert json.loads(r.envelope(err)) == {"resp": err}  # events have no corrId
    assert json.loads(r.envelope({"type": "x", "text": "é🙂"}))["resp"]["text"] == "é🙂"


def test_events() -> None:
    def ev(e: cev.ChatEvent, members: list[cev.Member] = MEMBERS) -> r.JsonObject:
        got = r.event_response(USER, e, members)
        assert got is not None
        return got

    got = ev(cev.ContactConnected(BOB))
    assert got["type"] == "contactConnected" and got["contact"]["contactId"] == 3
    assert got["user"]["userId"] == 1

    invited = member(1, "alice", "user", "memInvited")
    host = member(2, "bob", "host", "memConnected", 3)
    got = ev(cev.ReceivedGroupInvitation(TEAM, BOB, "member"), [invited, host])
    assert got["type"] == "receivedGroupInvitation" and got["memberRole"] == "member"
    assert got["groupInfo"]["membership"]["memberStatus"] == "memInvited"

    got = ev(cev.UserJoinedGroup(TEAM), [invited, host])
    assert got["type"] == "userJoinedGroup" and got["hostMember"]["memberCategory"] == "host"

    assert ev(cev.JoinedGroupMember(TEAM, BOB_M))["member"]["groupMemberId"] == 2
    cath = member(3, "cath", "post", "memAnnounced")
    got = ev(cev.MemberAnnounced(TEAM, cath), [invited, host, cath])
    assert got["type"] == "joinedGroupMemberConnecting"
    assert got["hostMember"]["localDisplayName"] == "bob"
    assert got["member"]["localDisplayName"] == "cath"
    assert ev(cev.ConnectedToGroupMember(TEAM, cath))["type"] == "connectedToGroupMember"
    failed = ev(cev.MemberFailed(TEAM, cath, "REFUSED"))
    assert failed["type"] == "memberSubError"
    assert failed["chatError"]["agentError"]["internalErr"] == "REFUSED"
    assert ev(cev.MemberLeft(TEAM, BOB_M))["type"] == "leftMember"
    got = ev(cev.MemberRemoved(TEAM, cath, BOB_M))
    assert got["type"] == "deletedMember"
    assert got["byMember"]["localDisplayName"] == "bob"
    assert got["deletedMember"]["localDisplayName"] == "cath"
    got = ev(cev.UserRemoved(TEAM, None), [invited, host])
    assert got["type"] == "deletedMemberUser" and got["member"]["memberCategory"] == "host"
    assert ev(cev.GroupDeleted(TEAM, host))["type"] == "groupDeleted"

    item = cev.ChatItem(6, "rcv", "yo", "received", 0.0, group=TEAM, author=BOB_M)
    got = ev(cev.NewChatItem(item))
    assert got["type"] == "newChatItems" and len(got["chatItems"]) == 1
    assert got["chatItems"][0]["chatInfo"]["groupInfo"]["membership"]["groupMemberId"] == 1

    failed_item = cev.ChatItem(9, "snd", "x", "error", 0.0, contact=BOB)
    status = r.event_response(USER, cev.ChatItemStatus(9, "error", "AUTH"), [], failed_item)
    assert status is not None and status["type"] == "chatItemStatusUpdated"
    assert status["chatItem"]["chatItem"]["meta"]["itemStatus"]["type"] == "sndError"
    assert r.event_response(USER, cev.ChatItemStatus(9, "error")) is None  # item not found

    got = ev(cev.ConnectionFailed(4, "REFUSED"))
    assert got["type"] == "chatError" and "REFUSED" in json.dumps(got)
    assert ev(cev.RelayStatus("relay:1", False, 3)) == {
        "type": "hostDisconnected",
        "protocol": "smp",
        "transportHost": "relay:1",
    }
    assert ev(cev.RelayStatus("relay:1", True, 3))["type"] == "hostConnected"


def test_own_actions_have_no_events() -> None:
    """As in simplex-chat, the command's reply reports them."""
    for e in (
        cev.ContactDeleted(BOB),
        cev.MemberRemoved(TEAM, BOB_M, None),
        cev.GroupDeleted(TEAM, None),
        cev.MemberConnecting(TEAM, BOB_M),
        cev.InvitationReady(1, "parley:/invite#x"),
    ):
        assert r.event_response(USER, e, MEMBERS) is None


def test_event_group() -> None:
    assert r.event_group(cev.MemberLeft(TEAM, BOB_M)) == TEAM
    item = cev.ChatItem(6, "rcv", "yo", "received", 0.0, group=TEAM, author=BOB_M)
    assert r.event_group(cev.NewChatItem(item)) == TEAM
    assert r.event_group(cev.ContactConnected(BOB)) is None
