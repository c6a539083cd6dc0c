"""The request envelope and command-string parser (no I/O)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.api import commands as c


def test_envelope() -> None:
    assert c.parse_request('{"corrId": "1", "cmd": "/u"}') == c.Request("1", "/u")
    assert c.parse_request('{"corrId": 7, "cmd": "/u"}') == c.Request(7, "/u")
    assert c.parse_request('{"cmd": "/u"}') == c.Request(None, "/u")


@pytest.mark.parametrize(
    ("frame", "corr_id", "words"),
    [
        ("{not json", None, "not valid JSON"),
        ("[1, 2]", None, "JSON object"),
        ('"/u"', None, "JSON object"),
        ('{"corrId": "5"}', "5", 'no "cmd"'),
        ('{"corrId": "5", "cmd": 3}', "5", "must be a string"),
        ('{"corrId": [], "cmd": "/u"}', None, "corrId"),
        ('{"corrId": true, "cmd": "/u"}', None, "corrId"),
        (b'{"corrId": "1", "cmd": "/u"}', None, "binary"),
        ("[" * 100_000, None, "not valid JSON"),
    ],
)
def test_bad_envelopes(frame: str | bytes, corr_id: str | None, words: str) -> None:
    got = c.parse_request(frame)
    assert isinstance(got, c.RequestError)
    assert got.corr_id == corr_id
    assert words in got.message


def send_json(ref: str, *texts: str) -> str:
    return f"/_send {ref} json " + json.dumps(
        [{"msgContent": {"type": "text", "text": t}} for t in texts]
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/u", c.ShowActiveUser()),
        ("/user", c.ShowActiveUser()),
        (
            '/_create user {"profile":{"displayName":"bot","fullName":"A Bot"},'
            '"sameServers":true,"pastTimestamp":false}',
            c.CreateActiveUser("bot", "A Bot"),
        ),
        ('/_create user {"profile":{"displayName":"bot"}}', c.CreateActiveUser("bot", "")),
        ("/_start", c.StartChat()),
        ("/_start subscribe=off expire=off", c.StartChat()),
        ("/_start subscribe=on expire=on xftp=off", c.StartChat()),
        ("/_get chats", c.GetChats()),
        ("/_get chats pcc=off", c.GetChats()),
        ("/_get chats 1 pcc=on", c.GetChats()),
        ("/_get chat @3 count=100", c.GetChat(c.ChatRef("direct", 3), 100)),
        ("/_get chat #2 before=10 count=5", c.GetChat(c.ChatRef("group", 2), 5, before=10)),
        ("/_get chat #2 after=10 count=5", c.GetChat(c.ChatRef("group", 2), 5, after=10)),
        (
            "/_get chat @1 count=5 search=hello there",
            c.GetChat(c.ChatRef("direct", 1), 5, search="hello there"),
        ),
        (send_json("@3", "hello"), c.SendMessages(c.ChatRef("direct", 3), ("hello",))),
        (send_json("#2", "a", "b"), c.SendMessages(c.ChatRef("group", 2), ("a", "b"))),
        (
            '/_send @3 json {"msgContent": {"type": "text", "text": "one"}}',
            c.SendMessages(c.ChatRef("direct", 3), ("one",)),
        ),
        (
            "/_send @3 live=off ttl=default " + send_json("", "x").removeprefix("/_send  "),
            c.SendMessages(c.ChatRef("direct", 3), ("x",)),
        ),
        ("/_send #2 text hi  there", c.SendMessages(c.ChatRef("group", 2), ("hi  there",))),
        ("@bob hello", c.SendMessages(c.NamedChatRef("direct", "bob"), ("hello",))),
        ("#team hi all", c.SendMessages(c.NamedChatRef("group", "team"), ("hi all",))),
        (
            "@'bob smith' hello",
            c.SendMessages(c.NamedChatRef("direct", "bob smith"), ("hello",)),
        ),
        ("/connect", c.AddContact()),
        ("/c", c.AddContact()),
        ("/connect parley:/invite#abc", c.Connect("parley:/invite#abc")),
        ("/c parley:/invite#abc", c.Connect("parley:/invite#abc")),
        ("/_connect 1", c.AddContact()),
        ("/_connect 1 incognito=off parley:/invite#x", c.Connect("parley:/invite#x")),
        ('/_group {"displayName":"team","fullName":"The Team"}', c.NewGroup("team", "The Team")),
        ('/_group 1 incognito=off {"displayName":"t"}', c.NewGroup("t", "")),
        ("/_add #2 3 member", c.AddMember(2, 3, "member")),
        ("/_add #2 3 admin", c.AddMember(2, 3, "admin")),
        ("/_add #2 3", c.AddMember(2, 3, "member")),
        ("/_join #2", c.JoinGroup(2)),
        ("/_members #2", c.ListMembers(2)),
        ("/_leave #2", c.LeaveGroup(2)),
        ("/_remove #2 5", c.RemoveMember(2, 5)),
        ("/_delete @3", c.DeleteChat(c.ChatRef("direct", 3))),
        ("/_delete #2", c.DeleteChat(c.ChatRef("group", 2))),
        ("/_info @3", c.ContactInfo(3)),
        ("/_info #2 5", c.GroupMemberInfo(2, 5)),
        ("/_read chat @3", c.ChatRead(c.ChatRef("direct", 3))),
        ("/_read chat #2 from=1 to=4", c.ChatRead(c.ChatRef("group", 2))),
        ("/show_address", c.ShowMyAddress()),
        (
            '/_update item @3 5 live=off json {"msgContent": {"type": "text", "text": "new"}}',
            c.UpdateItem(c.ChatRef("direct", 3), 5, "new"),
        ),
        (
            '/_update item #2 5 json {"type": "text", "text": "new"}',
            c.UpdateItem(c.ChatRef("group", 2), 5, "new"),
        ),
        ("/_delete item @3 5,6 broadcast", c.DeleteItems(c.ChatRef("direct", 3), (5, 6), True)),
        ("/_delete item #2 5 internal", c.DeleteItems(c.ChatRef("group", 2), (5,), False)),
        ("/_delete member item #2 7", c.DeleteMemberItems(2, (7,))),
        (
            '/_reaction @3 5 on json {"type": "emoji", "emoji": "👍"}',
            c.SetReaction(c.ChatRef("direct", 3), 5, True, "👍"),
        ),
        (
            '/_settings @3 {"enableNtfs": "all", "sendRcpts": false}',
            c.SetChatSettings(c.ChatRef("direct", 3), False),
        ),
        ("/_set receipts contacts 1 off", c.SetUserReceipts("contacts", 1, False)),
        ('/_set prefs @3 {"fullDelete": {"allow": "yes"}}', c.SetContactPrefs(3, True)),
        (
            '/_set prefs @3 {"fullDelete": {"allow": "no"}, "voice": {}}',
            c.SetContactPrefs(3, False),
        ),
        ("/_set prefs @3 {}", c.SetContactPrefs(3, None)),
        ("/_get item info #2 7", c.GetItemInfo(c.ChatRef("group", 2), 7)),
        ("/_sync @3", c.SyncRatchet(c.ChatRef("direct", 3), None, False)),
        ("/_sync #2 5 force=on", c.SyncRatchet(c.ChatRef("group", 2), 5, True)),
        (
            '/_send @3 json [{"msgContent": {"type": "text", "text": "re"}, "quotedItemId": 4}]',
            c.SendMessages(c.ChatRef("direct", 3), ("re",), (4,)),
        ),
        ("/_show_address 1", c.ShowMyAddress(1)),
        ("  /u  ", c.ShowActiveUser()),
        ("/U", c.ShowActiveUser()),
    ],
)
def test_commands(text: str, expected: c.Command) -> None:
    assert c.parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("/_accept member #1 2 member", "without approval"),
        ("/users", "one user"),
        ("/freceive 1", "files"),
        ("/_delete user 1 del_smp=on", "deleting users"),
        ("/_get relays #2", "/_get link"),
        ("/incognito on", "incognito"),
        ("/_block #1 2 blocked=on", "blocking"),
        ("/_set custom @1", "custom data"),
    ],
)
def test_unsupported(text: str, words: str) -> None:
    """Recognised commands parley does not do: refused with a reason."""
    got = c.parse_command(text)
    assert isinstance(got, c.Unsupported)
    assert words in got.reason


WELCOME = {"type": "text", "text": "Send me a number"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the npm client 0.2.x
        ("/address", c.CreateMyAddress()),
        ("/_address 1", c.CreateMyAddress(1)),
        ("/delete_address", c.DeleteMyAddress()),
        ("/_delete_address 1", c.DeleteMyAddress(1)),
        ("/auto_accept off", c.SetAutoAccept(False)),
        ("/auto_accept on", c.SetAutoAccept(True)),
        ("/auto_accept on incognito=off", c.SetAutoAccept(True)),
        (f"/auto_accept on json {json.dumps(WELCOME)}", c.SetAutoAccept(True, "Send me a number")),
        ("/_auto_accept 1 on text hi there", c.SetAutoAccept(True, "hi there", 1)),
        ("/profile_address off", c.SetProfileAddress(False)),
        ("/_profile_address 1 on", c.SetProfileAddress(True, 1)),
        ("/_accept 4", c.AcceptContact(4)),
        ("/_accept incognito=off 4", c.AcceptContact(4)),
        ("/_reject 4", c.RejectContact(4)),
        ("/_create link #2 member", c.CreateGroupLink(2, "member")),
        ("/_create link #2", c.CreateGroupLink(2, "member")),
        ("/_create link #2 observer", c.CreateGroupLink(2, "observer")),
        ("/_set link role #2 admin", c.SetGroupLinkRole(2, "admin")),
        ("/_delete link #2", c.DeleteGroupLink(2)),
        ("/_get link #2", c.GetGroupLink(2)),
        ('/_profile 1 {"displayName": "sq", "fullName": ""}', c.UpdateProfile(1, "sq", "")),
        # the current API (the Python library's generated command strings)
        (
            '/_address_settings 1 {"businessAddress": false, "autoAccept": '
            '{"acceptIncognito": false}, "autoReply": ' + json.dumps(WELCOME) + "}",
            c.SetAutoAccept(True, "Send me a number", 1, current=True),
        ),
        (
            '/_address_settings 1 {"businessAddress": false}',
            c.SetAutoAccept(False, None, 1, current=True),
        ),
        ("/_contacts 1", c.ListContacts(1)),
        ("/_groups 1", c.ListGroups(1)),
        ("/_groups 1 @3 tea", c.ListGroups(1, 3, "tea")),
        ("/_get chats 1 count=20", c.GetChats(20)),
        (
            '/_get chats 1 pcc=on count=5 {"type": "filters", "favorite": false, "unread": false}',
            c.GetChats(5),
        ),
        ("/_remove #2 5,6", c.RemoveMember(2, 5, (6,), True)),
        ("/_remove #2 5 messages=off", c.RemoveMember(2, 5)),
        ("/_member role #2 5,6 observer", c.SetMembersRole(2, (5, 6), "observer")),
        ("/_connect plan 1 parley:/contact#abc", c.ConnectPlan(1, "parley:/contact#abc")),
        ("/_connect 1 parley:/contact#abc", c.Connect("parley:/contact#abc")),
        ("/_delete @3 full", c.DeleteChat(c.ChatRef("direct", 3))),
        ("/_delete #2 entity notify=off", c.DeleteChat(c.ChatRef("group", 2))),
        ("/_stop", c.StopChat()),
        (
            '/_send @3 json [{"msgContent": {"type": "text", "text": "49"}, "mentions": {}, '
            '"quotedItemId": 7}]',
            c.SendMessages(c.ChatRef("direct", 3), ("49",), (7,)),
        ),
    ],
)
def test_address_link_and_current_commands(text: str, expected: c.Command) -> None:
    assert c.parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("/auto_accept on incognito=on", "incognito"),
        ("/auto_accept maybe", "usage"),
        ('/auto_accept on json {"type": "image"}', "text message"),
        ('/_address_settings 1 {"businessAddress": true}', "business"),
        ("/_address one", "user id"),
        ("/_accept", "usage"),
        ("/_create link #2 king", "unknown role"),
        ("/_set link role #2", "usage"),
        ('/_set prefs #2 {"fullDelete": {"allow": "yes"}}', "usage"),
        ('/_set prefs @2 {"fullDelete": {"allow": "maybe"}}', "fullDelete"),
        ("/_get item info #2", "usage"),
        ("/_remove #2 5,5", "twice"),
        ("/_remove #2 5 messages=on", "messages=on"),
        ('/_get chats 1 count=5 {"type": "search", "search": "x"}', "filters"),
        ("/_send @3 sign=on json []", "signed"),
        ("hello", "unknown command"),
        ("/frobnicate", "unknown command"),
        ("/u bob", "no arguments"),
        ("/_create user", "usage"),
        ("/_create user {}", "profile"),
        ('/_create user {"profile": {"displayName": ""}}', "displayName"),
        ('/_create user {"profile": {"displayName": "a", "fullName": 3}}', "fullName"),
        ('/_create user {"profile": {"displayName": "a", "image": "data:x"}}', "images"),
        ("/_create user [1]", "JSON object"),
        ("/_start now", "unexpected"),
        ("/_get chat @3", "count"),
        ("/_get chat @3 count=0", "count must be"),
        ("/_get chat @3 count=999999", "count must be"),
        ("/_get chat @3 before=1 after=2 count=5", "not both"),
        ("/_get chat @3 count=5 count=6", "unexpected"),
        ("/_get chat @x count=5", "number"),
        ("/_get chat 3 count=5", "expected a chat"),
        ("/_get chat <@3 count=5", "contact requests"),
        ("/_get chat :3 count=5", "pending connections"),
        ("/_get chat @99999999999999999999 count=5", "too large"),
        ("/_get chat @-1 count=5", "number"),
        ("/_get chat @１ count=5", "number"),
        ("/_send @3", "expected json"),
        ("/_send @3 json", "not valid JSON"),
        ("/_send @3 json []", "no messages"),
        ("/_send @3 json [1]", "msgContent"),
        ('/_send @3 json [{"msgContent": {"type": "image", "image": "x"}}]', "only text"),
        ('/_send @3 json [{"msgContent": {"type": "text", "text": 5}}]', "string"),
        ('/_send @3 json [{"filePath": "/etc/passwd", "msgContent": {"type": "file"}}]', "files"),
        (
            '/_send @3 json [{"fileSource": {"filePath": "/x"}, "msgContent": '
            '{"type": "text", "text": "x"}}]',
            "fileSource",
        ),
        ("/_send @3 live=on text hi", "live"),
        ("/_send @3 ttl=30 text hi", "ttl"),
        ("/_send @3 text", "empty"),
        ("@bob", "usage"),
        ("@'bob hello", "unterminated"),
        ("/_connect", "usage"),
        ("/_connect 1 incognito=on", "incognito"),
        ("/_connect 1 a b c", "no spaces"),
        ("/_group", "usage"),
        ('/_group {"fullName": "x"}', "displayName"),
        ("/_add #2", "usage"),
        ("/_add 2 3", "usage"),
        ("/_add #2 3 boss", "unknown role"),
        ("/_add #x 3", "number"),
        ("/_join", "usage"),
        ("/_join 2", "usage"),
        ("/_join #2 #3", "usage"),
        ("/_members @2", "usage"),
        ("/_remove #2", "usage"),
        ("/_delete @3 now", "unexpected"),
        ("/_info", "usage"),
        ("/_info #2", "usage"),
        ("/_read chat ", "usage"),
        ("/_read @3", "usage"),
    ],
)
def test_parse_errors(text: str, words: str) -> None:
    got = c.parse_command(text)
    assert isinstance(got, c.ParseError), got
    assert words in got.message


WORDS = ["/_send", "/_get", "/_get chat", "/_create user", "/_add", "/_group", "/connect", "@"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["", *WORDS]), st.text(max_size=60))
def test_the_parser_never_raises(word: str, rest: str) -> None:
    got = c.parse_command(f"{word} {rest}" if word else rest)
    assert isinstance(got, c.Command | c.ParseError)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=80), st.binary(max_size=40)))
def test_the_envelope_never_raises(frame: str | bytes) -> None:
    assert isinstance(c.parse_request(frame), c.Request | c.RequestError)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=8,
)
KEYS = ["msgContent", "type", "text", "profile", "displayName", "fullName", "filePath"]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["/_send @1 json", "/_create user", "/_group"]),
    st.recursive(
        JSON,
        lambda inner: (
            st.dictionaries(st.sampled_from(KEYS), inner, max_size=3) | st.lists(inner, max_size=2)
        ),
        max_leaves=6,
    ),
)
def test_any_json_argument_is_parsed_or_refused(word: str, value: object) -> None:
    got = c.parse_command(f"{word} {json.dumps(value)}")
    assert isinstance(got, c.Command | c.ParseError)
