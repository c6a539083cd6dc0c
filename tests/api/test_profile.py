"""Profiles through the bot API: /_profile and /p change the user's profile, announced to
contacts (contactUpdated) and groups (groupMemberUpdated); /_group_profile changes a
group's (groupUpdated at the members)."""

from __future__ import annotations

from parley.api import commands as c
from parley.relay.server import RelayServer
from tests.api.conftest import MakeBot, connect_bots
from tests.chat.conftest import MakeChat


def test_profile_commands_parse() -> None:
    assert c.parse_command("/p alicia Alice A.") == c.UpdateProfile(None, "alicia", "Alice A.")
    assert c.parse_command("/profile bob") == c.UpdateProfile(None, "bob", "")
    assert c.parse_command("/p") == c.ShowActiveUser()
    assert c.parse_command('/_group_profile #3 {"displayName": "crew"}') == (
        c.UpdateGroupProfile(3, "crew", "")
    )
    for bad in ("/_group_profile 3 {}", "/_group_profile #3", '/_group_profile #x {"a": 1}'):
        assert isinstance(c.parse_command(bad), c.ParseError), bad


async def test_profile_changes_end_to_end(
    relay: RelayServer, make_chat: MakeChat, bot_for: MakeBot
) -> None:
    relays = [str(relay.address)]
    a = await bot_for(await make_chat("alice", relays))
    b = await bot_for(await make_chat("bob", relays))
    bob = (await connect_bots(a, b))[0]["contact"]["contactId"]
    gid = (await a.ok('/_group {"displayName": "team"}', "groupCreated"))["groupInfo"]["groupId"]
    await a.ok(f"/_add #{gid} {bob} member", "sentGroupInvitation")
    b_gid = (await b.event("receivedGroupInvitation"))["groupInfo"]["groupId"]
    await b.ok(f"/_join #{b_gid}", "userAcceptedGroupSent")
    await b.event("userJoinedGroup")
    await a.event("joinedGroupMember")

    # /_profile: the reply has both profiles; bob's side sees the contact and the member
    updated = await a.ok(
        '/_profile 1 {"displayName": "alicia", "fullName": "Alice A."}', "userProfileUpdated"
    )
    assert updated["fromProfile"]["displayName"] == "alice"
    assert updated["toProfile"] == {**updated["toProfile"], "displayName": "alicia"}
    assert updated["user"]["localDisplayName"] == "alicia"
    contact = await b.event("contactUpdated")
    assert contact["fromContact"]["localDisplayName"] == "alice"
    assert contact["toContact"]["localDisplayName"] == "alicia"
    assert contact["toContact"]["profile"]["fullName"] == "Alice A."
    member = await b.event("groupMemberUpdated")
    assert member["groupInfo"]["groupId"] == b_gid
    assert member["fromMember"]["localDisplayName"] == "alice"
    assert member["toMember"]["localDisplayName"] == "alicia"
    await a.ok(
        '/_profile 1 {"displayName": "alicia", "fullName": "Alice A."}', "userProfileNoChange"
    )
    assert (await a.cmd('/_profile 9 {"displayName": "x"}'))["type"] == "chatCmdError"

    # /p, as the CLI writes it
    await b.ok("/p robert Bob R.", "userProfileUpdated")
    assert (await a.event("contactUpdated"))["toContact"]["localDisplayName"] == "robert"
    assert (await a.event("groupMemberUpdated"))["toMember"]["localDisplayName"] == "robert"
    assert (await b.ok("/p", "activeUser"))["user"]["localDisplayName"] == "robert"
    await b.ok("@alicia hello", "newChatItems")  # the contact goes by the new name

    # the group profile: the owner changes it, a member cannot
    changed = await a.ok(
        f'/_group_profile #{gid} {{"displayName": "crew", "fullName": "The Crew"}}', "groupUpdated"
    )
    assert changed["fromGroup"]["localDisplayName"] == "team"
    assert changed["toGroup"]["groupProfile"] == {"displayName": "crew", "fullName": "The Crew"}
    got = await b.event("groupUpdated")
    assert got["toGroup"]["localDisplayName"] == "crew"
    assert got["member_"]["localDisplayName"] == "alicia"
    refused = await b.cmd(f'/_group_profile #{b_gid} {{"displayName": "bobs"}}')
    assert refused["type"] == "chatCmdError"
