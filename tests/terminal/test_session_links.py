"""The terminal's address, contact request, group link, role, profile and info commands,
and plain text sent to the last chat: ChatSession against real controllers and a relay."""

from __future__ import annotations

from parley.relay.server import RelayServer
from tests.chat.conftest import MakeChat
from tests.terminal.test_session import session_for

ADDRESS = "your chat address: "


async def test_address_requests_and_the_last_chat(relay: RelayServer, make_chat: MakeChat) -> None:
    relays = [str(relay.address)]
    a, b, c, d = [await make_chat(n, relays) for n in ("alice", "bob", "cath", "dan")]
    async with (
        session_for(a) as (alice, a_out),
        session_for(b) as (bob, b_out),
        session_for(c) as (cath, c_out),
        session_for(d) as (dan, _),
    ):
        await alice.handle_line("/sa")
        await a_out.wait_for("you have no chat address: /ad makes one")
        await alice.handle_line("/ad")
        link = (await a_out.wait_for(ADDRESS)).removeprefix(ADDRESS)
        assert a_out.qrs == 1
        await alice.handle_line("/sa")
        assert (await a_out.wait_for(ADDRESS)).endswith(link)
        await a_out.wait_for("auto-accept is off")
        assert sum(ADDRESS in line for line in a_out.lines) == 2  # the event was not shown too

        # a request, accepted by name
        await bob.handle_line(f"/c {link}")
        await a_out.wait_for("bob wants to connect to you; to accept: /ac bob")
        await alice.handle_line("/ac bob")
        await a_out.wait_for("bob: accepting contact request")
        await a_out.wait_for("bob: contact is connected")
        await b_out.wait_for("alice: contact is connected")

        # a request, rejected
        await dan.handle_line(f"/c {link}")
        await a_out.wait_for("dan wants to connect to you")
        await alice.handle_line("/rc dan")
        await a_out.wait_for("dan: contact request rejected")
        await alice.handle_line("/ac dan")
        await a_out.wait_for("error: no contact request from dan")

        # auto-accept with a welcome; plain text goes to the last chat
        await alice.handle_line("/auto_accept on Welcome, friend!")
        await a_out.wait_for("auto-accept is on, welcome message: Welcome, friend!")
        await cath.handle_line("hello?")
        await c_out.wait_for("error: no chat to send to yet")
        await cath.handle_line(f"/c {link}")
        await c_out.wait_for("alice> Welcome, friend!")
        await cath.handle_line("thanks!")  # the welcome came from alice
        await a_out.wait_for("cath> thanks!")
        await alice.handle_line("you're welcome")  # cath wrote last
        await c_out.wait_for("alice> you're welcome")
        await alice.handle_line("@bob hi bob")
        await alice.handle_line("still there?")  # alice wrote to bob last
        await b_out.wait_for("alice> hi bob")
        await b_out.wait_for("alice> still there?")

        # profiles: shown, changed, seen by contacts; /i shows a contact
        await alice.handle_line("/p")
        await a_out.wait_for("you are alice")
        await alice.handle_line("/p alicia Alice A.")
        await a_out.wait_for("your profile is updated: alicia (Alice A.)")
        await b_out.wait_for("contact alice updated the profile: alicia (Alice A.)")
        await bob.handle_line("again")  # the last chat follows the rename
        await a_out.wait_for("bob> again")
        await alice.handle_line("/p alicia Alice A.")
        await a_out.wait_for("your profile is unchanged")
        await bob.handle_line("/i @alicia")
        await b_out.wait_for("@alicia: contact, connected")
        await b_out.wait_for("  profile: alicia (Alice A.)")
        await bob.handle_line("/i alice")
        await b_out.wait_for("error: no contact alice")

        await alice.handle_line("/da")
        await a_out.wait_for("your chat address is deleted")
        await alice.handle_line("/sa")
        await a_out.wait_for("you have no chat address")


async def test_group_links_roles_and_profiles(relay: RelayServer, make_chat: MakeChat) -> None:
    relays = [str(relay.address)]
    a, b = [await make_chat(n, relays) for n in ("alice", "bob")]
    async with session_for(a) as (alice, a_out), session_for(b) as (bob, b_out):
        await alice.handle_line("/g team")
        await alice.handle_line("/show link #team")
        await a_out.wait_for("#team has no link: /create link #team makes one")
        await alice.handle_line("/create link #team observer")
        line = await a_out.wait_for("#team: group link (new members join as observer): ")
        link = line.split(": ")[-1]
        await alice.handle_line("/set link role #team member")
        await a_out.wait_for("#team: new members join through the link as member")
        await alice.handle_line("/show link team")
        await a_out.wait_for(f"#team: group link (new members join as member): {link}")
        assert a_out.qrs == 2

        await bob.handle_line(f"/c {link}")
        await b_out.wait_for("#team: you joined the group")
        await a_out.wait_for("#team: bob joined the group")
        await bob.handle_line("#team hi all")
        await a_out.wait_for("#team bob> hi all")

        # roles
        await alice.handle_line("/mr #team bob observer")
        await a_out.wait_for("#team: you changed the role of bob from member to observer")
        await b_out.wait_for("#team: alice changed the role of bob from member to observer")
        await bob.handle_line("hello?")  # the last chat is #team; observers cannot send
        await b_out.wait_for("error: #team: you are an observer")
        await alice.handle_line("/mr #team bob observer")
        await a_out.wait_for("#team: bob is observer already")

        # info about members; profiles in the group
        await alice.handle_line("/i #team bob")
        await a_out.wait_for("#team bob: member, observer")
        await a_out.wait_for("  status: connected")
        await bob.handle_line("/i #team alice")
        await b_out.wait_for("#team alice: host, owner")
        await bob.handle_line("/p robert")
        await a_out.wait_for("#team: member bob updated the profile: robert")
        await alice.handle_line("/gp #team crew The Crew")
        await a_out.wait_for("#team: you updated the group profile: #crew (The Crew)")
        await b_out.wait_for("#team: alice updated the group profile: #crew (The Crew)")
        await bob.handle_line("/gp #crew mine")
        await b_out.wait_for("error: #crew: only owners can change the group profile")
        await alice.handle_line("hello crew")  # alice's last chat was #team, now #crew
        await alice.handle_line("/tail #crew 1")
        await a_out.wait_for("#crew you> hello crew")

        await alice.handle_line("/delete link #crew")
        await a_out.wait_for("#crew: group link deleted")
        await alice.handle_line("/help links")
        await a_out.wait_for("/create link #group [role]")
