"""The command parser: every command, good and bad input, and no other exception, ever."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.chat import commands as c
from parley.chat.commands import ParseError, parse_command

GOOD: list[tuple[str, c.Command]] = [
    ("! @bob (hel) hello there", c.EditMessage("hello there", "hel", contact="bob")),
    ("! #team again", c.EditMessage("again", "", group="team")),
    ("\\ @bob hello", c.DeleteMessage("hello", contact="bob")),
    ("\\\\ #team @bob spam", c.DeleteMessage("spam", group="team", member="bob")),
    ("> @bob (q) reply", c.ReplyMessage("q", "reply", contact="bob")),
    (">> #team (mine) re", c.ReplyMessage("mine", "re", group="team", own=True)),
    ("> #team @cath (x) y", c.ReplyMessage("x", "y", group="team", member="cath")),
    ("+👍 @bob hello", c.ReactMessage("👍", True, "hello", contact="bob")),
    ("-👍 #team @bob (hi)", c.ReactMessage("👍", False, "hi", group="team", member="bob")),
    ("/receipts @bob off", c.SetReceipts(False, contact="bob")),
    ("/receipts #team default", c.SetReceipts(None, group="team")),
    ("/receipts contacts on", c.SetReceipts(True, everyone="contacts")),
    ("/full_delete @bob on", c.SetFullDelete(True, contact="bob")),
    ("/full_delete #team default", c.SetFullDelete(None, group="team")),
    ("/full_delete all off", c.SetFullDelete(False)),
    ("/sync @bob", c.SyncRatchet(contact="bob")),
    ("/sync #team bob force", c.SyncRatchet(group="team", member="bob", force=True)),
    ("/c", c.NewInvitation()),
    ("/connect", c.NewInvitation()),
    ("  /c  ", c.NewInvitation()),
    ("/c parley:/invite#abc_DEF-1", c.Connect("parley:/invite#abc_DEF-1")),
    ("/c\tparley:/invite#x", c.Connect("parley:/invite#x")),
    ("/cs", c.ListContacts()),
    ("/contacts", c.ListContacts()),
    ("/CS", c.ListContacts()),
    ("@bob hello there", c.SendContactMessage("bob", "hello there")),
    ("@bob   spaced  out  ", c.SendContactMessage("bob", "spaced  out")),
    ("@'Bob Smith' hi", c.SendContactMessage("Bob Smith", "hi")),
    ('@"O\'Neil" hi', c.SendContactMessage("O'Neil", "hi")),
    ("@bob /not a command", c.SendContactMessage("bob", "/not a command")),
    ("/d @bob", c.DeleteContact("bob")),
    ("/delete @'Bob Smith'", c.DeleteContact("Bob Smith")),
    ("/d #team", c.DeleteGroup("team")),
    ("/g team", c.CreateGroup("team")),
    ("/g #team", c.CreateGroup("team")),
    ("/g team The Team of Us", c.CreateGroup("team", "The Team of Us")),
    ("/group 'my team' Mine", c.CreateGroup("my team", "Mine")),
    ("/a team bob", c.AddMember("team", "bob", "member")),
    ("/a #team @bob admin", c.AddMember("team", "bob", "admin")),
    ("/add team bob OBSERVER", c.AddMember("team", "bob", "observer")),
    ("/a team bob member", c.AddMember("team", "bob", "member")),
    ("/j team", c.JoinGroup("team")),
    ("/join #team", c.JoinGroup("team")),
    ("#team hello all", c.SendGroupMessage("team", "hello all")),
    ("#'my team' hi", c.SendGroupMessage("my team", "hi")),
    ("/ms team", c.ListMembers("team")),
    ("/members #team", c.ListMembers("team")),
    ("/gs", c.ListGroups()),
    ("/groups", c.ListGroups()),
    ("/l team", c.LeaveGroup("team")),
    ("/leave #team", c.LeaveGroup("team")),
    ("/rm team dan", c.RemoveMember("team", "dan")),
    ("/remove #team @dan", c.RemoveMember("team", "dan")),
    ("/status", c.ShowStatus()),
    ("/help", c.Help()),
    ("/h", c.Help()),
    ("/?", c.Help()),
    ("/help groups", c.Help("groups")),
    ("/help Group", c.Help("groups")),
    ("/q", c.Quit()),
    ("/quit", c.Quit()),
    ("/u", c.ShowUser()),
    ("/user", c.ShowUser()),
    ("/tail", c.Tail()),
    ("/tail 5", c.Tail(5)),
    ("/tail @bob", c.Tail(contact="bob")),
    ("/tail @bob 3", c.Tail(3, contact="bob")),
    ("/tail #team 20", c.Tail(20, group="team")),
    ("/tail bob", c.Tail(name="bob")),
    ("/tail bob 2", c.Tail(2, name="bob")),
    ("/tail 'my team' 2", c.Tail(2, name="my team")),
    ("hello there", c.SendToLast("hello there")),
    ("  spaced out ", c.SendToLast("spaced out")),
    ("/ad", c.CreateAddress()),
    ("/address", c.CreateAddress()),
    ("/sa", c.ShowAddress()),
    ("/show_address", c.ShowAddress()),
    ("/da", c.DeleteAddress()),
    ("/delete_address", c.DeleteAddress()),
    ("/ac bob", c.AcceptRequest("bob")),
    ("/accept @'Bob Smith'", c.AcceptRequest("Bob Smith")),
    ("/rc bob_1", c.RejectRequest("bob_1")),
    ("/reject @bob", c.RejectRequest("bob")),
    ("/auto_accept on", c.AutoAccept(True)),
    ("/auto_accept ON Hello, welcome!", c.AutoAccept(True, "Hello, welcome!")),
    ("/auto_accept off", c.AutoAccept(False)),
    ("/create link #team", c.CreateGroupLink("team")),
    ("/create link team observer", c.CreateGroupLink("team", "observer")),
    ("/show link #team", c.ShowGroupLink("team")),
    ("/delete link #team", c.DeleteGroupLink("team")),
    ("/d link team", c.DeleteGroupLink("team")),
    ("/set link role #team observer", c.SetGroupLinkRole("team", "observer")),
    ("/mr #team bob admin", c.SetMemberRole("team", "bob", "admin")),
    ("/mr team @bob OWNER", c.SetMemberRole("team", "bob", "owner")),
    ("/p", c.Profile()),
    ("/p alicia", c.Profile("alicia")),
    ("/profile alicia Alice A.", c.Profile("alicia", "Alice A.")),
    ("/p 'Alice B' Alice Bee", c.Profile("Alice B", "Alice Bee")),
    ("/gp #team crew The Crew", c.GroupProfile("team", "crew", "The Crew")),
    ("/group_profile team #crew", c.GroupProfile("team", "crew")),
    ("/i @bob", c.Info("bob")),
    ("/i bob", c.Info("bob")),
    ("/info #team bob", c.Info("bob", "team")),
]


@pytest.mark.parametrize(("line", "command"), GOOD)
def test_good_commands(line: str, command: c.Command) -> None:
    assert parse_command(line) == command


BAD: list[tuple[str, str]] = [
    ("", "empty command"),
    ("   ", "empty command"),
    ("/", "unknown command"),
    ("/frobnicate", "unknown command /frobnicate"),
    ("/c one two", "unexpected 'two'"),
    ("/cs extra", "usage /cs"),
    ("@bob", "nothing to send: @bob TEXT"),
    ("@bob    ", "nothing to send"),
    ("@ hi", "missing contact after @"),
    ("@", "missing contact"),
    ("@'bob hi", "not closed"),
    ("@'' hi", "empty"),
    ("@'bob'hi", "space after the closing quote"),
    ("#team", "nothing to send: #team TEXT"),
    ("# hi", "missing group"),
    ("/d bob", "/d @bob to delete a contact or /d #bob"),
    ("/d", "missing what to delete"),
    ("/d @bob extra", "unexpected"),
    ("/d #", "missing group"),
    ("/g", "missing group name"),
    ("/a", "missing group"),
    ("/a team", "missing contact"),
    ("/a team bob boss", "unknown role 'boss'"),
    ("/a team bob admin extra", "unexpected"),
    ("/a #team #bob", "expected @name or a bare name"),
    ("/j", "missing group: /j group"),
    ("/j team other", "unexpected 'other'"),
    ("/j @team", "expected #name"),
    ("/ms", "missing group: /ms group"),
    ("/l", "missing group"),
    ("/rm team", "missing member"),
    ("/rm", "missing group"),
    ("/help nonsense", "no help topic"),
    ("/q now", "unexpected"),
    ("/status please", "unexpected"),
    ("/tail 0", "from 1 to"),
    ("/tail 100000", "from 1 to"),
    ("/tail @bob many", "not a number"),
    ("/tail 5 6", "unexpected"),
    ("/tail @bob 5 6", "unexpected"),
    ("/ad now", "usage /ad"),
    ("/sa x", "usage /sa"),
    ("/ac", "missing name"),
    ("/rc bob alice", "unexpected"),
    ("/auto_accept", "missing on or off"),
    ("/auto_accept maybe", "say on or off"),
    ("/auto_accept off Welcome", "a welcome message goes with /auto_accept on"),
    ("/create team", "usage: /create link #group"),
    ("/create link", "missing group"),
    ("/create link #team owner", "unknown role 'owner'"),
    ("/show #team", "usage: /show link #group"),
    ("/show link", "missing group"),
    ("/delete link", "missing group"),
    ("/set link #team member", "usage: /set link role"),
    ("/set link role #team", "missing role"),
    ("/set link role #team boss", "unknown role 'boss'"),
    ("/mr #team bob", "missing role"),
    ("/mr #team", "missing member"),
    ("/mr #team bob chief", "unknown role 'chief'"),
    ("/gp #team", "missing the new name"),
    ("/i", "missing name"),
    ("/i #team", "missing member"),
    ("/i @bob extra", "unexpected"),
]


@pytest.mark.parametrize(("line", "message"), BAD)
def test_bad_commands(line: str, message: str) -> None:
    with pytest.raises(ParseError) as e:
        parse_command(line)
    assert message in str(e.value)


def test_every_documented_command_parses() -> None:
    examples = {
        "/c LINK": "/c parley:/invite#x",
        "@name TEXT": "@bob hi",
        "#group TEXT": "#team hi",
        "/set link role #group role": "/set link role #team observer",
        "/receipts @name|#group|contacts|groups on|off|default": "/receipts @bob off",
        "/sync @name|#group member": "/sync @bob",
        "/full_delete @name|#group|all on|off|default": "/full_delete all on",
    }
    for h in c.COMMANDS:
        line = h.usage.replace("[", "").replace("]", "")
        line = line.replace("|", " ").replace("@contact #group", "@bob").replace(" n", " 3")
        line = line.replace("role", "admin").replace("topic", "groups")
        line = examples.get(h.usage, line.replace("full name", "Full Name"))
        parse_command(line)  # no ParseError
        for alias in h.aliases:
            parse_command(alias + line[len(h.usage.split()[0]) :])


def test_help_lines() -> None:
    lines = c.help_lines()
    assert any(line.startswith("/ms group") for line in lines)
    assert lines[-1].startswith("topics:")
    groups = c.help_lines("groups")
    assert groups[0].startswith("Groups:")
    assert all("/c LINK" not in line for line in groups)
    with pytest.raises(ParseError):
        c.help_lines("nope")


@pytest.mark.parametrize(
    ("name", "typed"),
    [("bob", "bob"), ("Bob Smith", "'Bob Smith'"), ("O'Neil Jr", '"O\'Neil Jr"'), ("#x", "'#x'")],
)
def test_quote_name_round_trips(name: str, typed: str) -> None:
    assert c.quote_name(name) == typed
    assert parse_command(f"@{typed} hi") == c.SendContactMessage(name, "hi")


PREFIXES = st.sampled_from(
    [
        *("", "/", "@", "#", "/c ", "/d ", "/a ", "/tail ", "/g ", "/help ", "/rm ", "@'", '#"'),
        *("/ac ", "/auto_accept ", "/create link ", "/set link role ", "/mr ", "/p ", "/i "),
        *("/gp ", "/d link ", "/show link "),
    ]
)


@given(PREFIXES, st.text())
def test_any_line_is_a_command_or_a_parse_error(prefix: str, rest: str) -> None:
    line = prefix + rest
    try:
        command = parse_command(line)
    except ParseError as e:
        assert str(e)  # always says something
    else:
        assert isinstance(command, c.Command)


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60))
def test_messages_keep_their_text(text: str) -> None:
    try:
        command = parse_command("@bob " + text)
    except ParseError:
        assert not text.strip()
    else:
        assert command == c.SendContactMessage("bob", text.strip())
