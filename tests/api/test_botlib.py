"""SimpleX's official Python library (simplex-chat 7.x) on parley's chat: its ChatApi in
process through `LibraryBackend`, the current API's command strings and response types
checked against the library's generated types, and its README's squaring bot run with
`parley bot`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, ForwardRef

import pytest

pytest.importorskip("simplex_chat")

from simplex_chat import ChatApi, SqliteDb
from simplex_chat.core import ChatAPIError
from simplex_chat.types import CC, CR

from parley.api import commands as c
from parley.botlib import LibraryBackend
from parley.chat import events as cev
from parley.chat.controller import ChatController
from parley.relay.server import RelayServer
from tests.chat.conftest import MakeChat, chat_config, expect

BOTS = Path(__file__).parent / "bots"
Resp = dict[str, Any]


# ---------------------------------------------------------------- the library's types


def _text(note: Any) -> str:
    """An annotation as written (the generated modules' are strings or ForwardRefs)."""
    return note.__forward_arg__ if isinstance(note, ForwardRef) else str(note)


def _response_classes() -> dict[str, type]:
    """The library's response and event TypedDicts by their "type" tag."""
    from simplex_chat.types import CEvt

    out: dict[str, type] = {}
    for module in (CR, CEvt):
        for value in vars(module).values():
            note = getattr(value, "__annotations__", {}).get("type")
            m = re.fullmatch(r"""Literal\[["'](\w+)["']\]""", _text(note))
            if m is not None:
                out[m.group(1)] = value
    return out


RESPONSES = _response_classes()


def required_keys(cls: type) -> set[str]:
    """The keys a generated TypedDict requires (its annotations are strings)."""
    notes: dict[str, Any] = cls.__annotations__
    return {k for k, v in notes.items() if not _text(v).startswith("NotRequired[")}


def check_shape(resp: Resp) -> None:
    """`resp` has every field the library's type for its tag requires."""
    cls = RESPONSES.get(resp["type"])
    assert cls is not None, f"the library has no response or event {resp['type']!r}"
    missing = required_keys(cls) - set(resp)
    # parley does not sign messages: msgSigned is the one field it leaves out
    missing -= {"msgSigned"}
    assert not missing, f"{resp['type']} lacks {sorted(missing)}: {resp}"


# the library's command builders with arguments, and what parley parses each to
CURRENT_COMMANDS: list[tuple[str, Callable[[Any], str], Any, type]] = [
    ("address", CC.APICreateMyAddress_cmd_string, {"userId": 1}, c.CreateMyAddress),
    ("delete address", CC.APIDeleteMyAddress_cmd_string, {"userId": 1}, c.DeleteMyAddress),
    ("show address", CC.APIShowMyAddress_cmd_string, {"userId": 1}, c.ShowMyAddress),
    (
        "profile address",
        CC.APISetProfileAddress_cmd_string,
        {"userId": 1, "enable": False},
        c.SetProfileAddress,
    ),
    (
        "address settings",
        CC.APISetAddressSettings_cmd_string,
        {
            "userId": 1,
            "settings": {
                "businessAddress": False,
                "autoAccept": {"acceptIncognito": False},
                "autoReply": {"type": "text", "text": "hi"},
            },
        },
        c.SetAutoAccept,
    ),
    (
        "send",
        CC.APISendMessages_cmd_string,
        {
            "sendRef": {"chatType": "direct", "chatId": 3},
            "liveMessage": False,
            "signMessages": False,
            "composedMessages": [
                {"msgContent": {"type": "text", "text": "4"}, "mentions": {}, "quotedItemId": 9}
            ],
        },
        c.SendMessages,
    ),
    (
        "add member",
        CC.APIAddMember_cmd_string,
        {"groupId": 2, "contactId": 3, "memberRole": "member"},
        c.AddMember,
    ),
    ("join", CC.APIJoinGroup_cmd_string, {"groupId": 2}, c.JoinGroup),
    (
        "members role",
        CC.APIMembersRole_cmd_string,
        {"groupId": 2, "groupMemberIds": [4, 5], "memberRole": "observer"},
        c.SetMembersRole,
    ),
    (
        "remove",
        CC.APIRemoveMembers_cmd_string,
        {"groupId": 2, "groupMemberIds": [4], "withMessages": False},
        c.RemoveMember,
    ),
    ("leave", CC.APILeaveGroup_cmd_string, {"groupId": 2}, c.LeaveGroup),
    ("members", CC.APIListMembers_cmd_string, {"groupId": 2}, c.ListMembers),
    (
        "new group",
        CC.APINewGroup_cmd_string,
        {"userId": 1, "incognito": False, "groupProfile": {"displayName": "g", "fullName": ""}},
        c.NewGroup,
    ),
    (
        "create link",
        CC.APICreateGroupLink_cmd_string,
        {"groupId": 2, "memberRole": "member"},
        c.CreateGroupLink,
    ),
    (
        "link role",
        CC.APIGroupLinkMemberRole_cmd_string,
        {"groupId": 2, "memberRole": "observer"},
        c.SetGroupLinkRole,
    ),
    ("delete link", CC.APIDeleteGroupLink_cmd_string, {"groupId": 2}, c.DeleteGroupLink),
    ("get link", CC.APIGetGroupLink_cmd_string, {"groupId": 2}, c.GetGroupLink),
    ("add contact", CC.APIAddContact_cmd_string, {"userId": 1, "incognito": False}, c.AddContact),
    (
        "plan",
        CC.APIConnectPlan_cmd_string,
        {"userId": 1, "connectTarget": "parley:/contact#x", "resolveMode": "unknown"},
        c.ConnectPlan,
    ),
    (
        "connect prepared",
        CC.APIConnect_cmd_string,
        {"userId": 1, "incognito": False, "preparedLink_": {"connFullLink": "parley:/invite#x"}},
        c.Connect,
    ),
    (
        "connect",
        CC.Connect_cmd_string,
        {"incognito": False, "connTarget_": "parley:/invite#x"},
        c.Connect,
    ),
    ("accept", CC.APIAcceptContact_cmd_string, {"contactReqId": 4}, c.AcceptContact),
    ("reject", CC.APIRejectContact_cmd_string, {"contactReqId": 4}, c.RejectContact),
    ("contacts", CC.APIListContacts_cmd_string, {"userId": 1}, c.ListContacts),
    ("groups", CC.APIListGroups_cmd_string, {"userId": 1, "contactId_": 3}, c.ListGroups),
    (
        "get chats",
        CC.APIGetChats_cmd_string,
        {
            "userId": 1,
            "pendingConnections": False,
            "pagination": {"type": "last", "count": 20},
            "query": {"type": "filters", "favorite": False, "unread": False},
        },
        c.GetChats,
    ),
    (
        "delete chat",
        CC.APIDeleteChat_cmd_string,
        {
            "chatRef": {"chatType": "direct", "chatId": 3},
            "chatDeleteMode": {"type": "full", "notify": True},
        },
        c.DeleteChat,
    ),
    ("user", CC.ShowActiveUser_cmd_string, {}, c.ShowActiveUser),
    (
        "create user",
        CC.CreateActiveUser_cmd_string,
        {
            "newUser": {
                "profile": {"displayName": "b", "fullName": ""},
                "pastTimestamp": False,
                "userChatRelay": False,
                "clientService": False,
            }
        },
        c.CreateActiveUser,
    ),
    (
        "profile",
        CC.APIUpdateProfile_cmd_string,
        {"userId": 1, "profile": {"displayName": "b", "fullName": "", "peerType": "bot"}},
        c.UpdateProfile,
    ),
    ("start", CC.StartChat_cmd_string, {"mainApp": True, "enableSndFiles": True}, c.StartChat),
    ("stop", CC.APIStopChat_cmd_string, {}, c.StopChat),
]


@pytest.mark.parametrize(
    ("builder", "args", "kind"),
    [pytest.param(b, a, k, id=name) for name, b, a, k in CURRENT_COMMANDS],
)
def test_the_librarys_command_strings_are_understood(
    builder: Callable[[Any], str], args: Any, kind: type
) -> None:
    parsed = c.parse_command(builder(args))
    assert isinstance(parsed, kind), (builder(args), parsed)


# ---------------------------------------------------------------- the library in process


@pytest.fixture
def backend(relay: RelayServer) -> Iterator[LibraryBackend]:
    """The library's core calls answered by parley (fast retry timers), recording every
    reply and event for `check_shape`."""
    made = LibraryBackend(
        [str(relay.address)], config_for=lambda prefix, relays: chat_config(prefix, relays)
    )
    undo = made.install()
    yield made
    undo()


@pytest.fixture
async def library(backend: LibraryBackend, tmp_path: Path) -> AsyncIterator[ChatApi]:
    api = await ChatApi.init(SqliteDb(file_prefix=str(tmp_path / "bot" / "lib_bot")))
    yield api
    if api.initialized:
        await api.close()
    await backend.close()


async def next_event(api: ChatApi, kind: str, timeout: float = 20.0) -> Resp:
    async with asyncio.timeout(timeout):
        while True:
            event = await api.recv_chat_event(wait_us=200_000)
            if event is not None:
                check_shape(dict(event))
                if event["type"] == kind:
                    return dict(event)


async def test_the_library_drives_a_parley_chat(
    library: ChatApi, make_chat: MakeChat, relay: RelayServer, tmp_path: Path
) -> None:
    api = library
    replies: list[Resp] = []
    send = api.send_chat_cmd

    async def recording(cmd: str) -> Any:
        resp = await send(cmd)
        replies.append(dict(resp))
        return resp

    api.send_chat_cmd = recording  # type: ignore[method-assign]
    assert (tmp_path / "bot" / "lib_bot_chat.db").exists()  # where the script said
    assert await api.api_get_active_user() is None
    user = await api.api_create_active_user({"displayName": "libbot", "fullName": "Lib Bot"})
    await api.start_chat()
    user_id = user["userId"]
    link = await api.api_create_link(user_id)
    assert link.startswith("parley:/invite#")

    alice = await make_chat("alice", [str(relay.address)])
    await alice.connect(link)
    connected = await next_event(api, "contactConnected")
    contact_id = connected["contact"]["contactId"]
    await expect(alice, cev.ContactConnected)

    await alice.send_contact_message("libbot", "7")
    received = await next_event(api, "newChatItems")
    (item,) = received["chatItems"]
    assert item["chatItem"]["content"]["msgContent"]["text"] == "7"
    sent: Any = await api.api_send_text_reply(item, "49")  # a reply: the quote is dropped
    assert sent[0]["chatItem"]["content"]["msgContent"]["text"] == "49"
    reply = await expect(alice, cev.NewChatItem, where=lambda e: e.item.direction == "rcv")
    assert reply.item.text == "49"

    contacts = await api.api_list_contacts(user_id)
    assert [x["contactId"] for x in contacts] == [contact_id]
    group = await api.api_new_group(user_id, {"displayName": "squares", "fullName": ""})
    await api.api_add_member(group["groupId"], contact_id, "member")
    assert [g["groupId"] for g in await api.api_list_groups(user_id)] == [group["groupId"]]
    assert [g["groupId"] for g in await api.api_list_groups(user_id, contact_id)] == [
        group["groupId"]
    ]
    chats = await api.api_get_chats(user_id, {"type": "last", "count": 1})
    assert len(chats) == 1
    members = await api.api_list_members(group["groupId"])
    assert [m["memberContactId"] for m in members] == [contact_id]

    with pytest.raises(ChatAPIError) as refused:
        await api.send_chat_cmd('/_send @1 json [{"msgContent": {"type": "image"}}]')
    assert refused.value.chat_error is not None
    assert refused.value.chat_error["type"] == "error"

    await api.stop_chat()
    await api.close()
    for resp in replies:
        if resp["type"] != "chatCmdError":
            check_shape(resp)


# ---------------------------------------------------------------- parley bot SCRIPT.py


async def _addresses_work(relay: RelayServer, tmp_path: Path) -> bool:
    chat = await ChatController.open(chat_config(tmp_path / "probe", [str(relay.address)]))
    try:
        await chat.create_user("probe")
        await chat.start()
        await chat.create_address(10)
        return True
    except NotImplementedError:
        return False
    finally:
        await chat.close()


async def test_the_squaring_bot_answers_through_parley_bot(
    relay: RelayServer, make_chat: MakeChat, tmp_path: Path
) -> None:
    if not await _addresses_work(relay, tmp_path):
        pytest.skip("the chat has no contact addresses yet")
    folder = tmp_path / "squaring"
    folder.mkdir()
    shutil.copy(BOTS / "squaring_bot.py", folder / "squaring_bot.py")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "parley", "bot", "squaring_bot.py", "-s", str(relay.address),
        cwd=folder, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        address = None
        async with asyncio.timeout(60):
            while address is None:
                line = (await proc.stdout.readline()).decode()
                assert line, "parley bot exited:\n" + "".join(lines)
                lines.append(line)
                m = re.search(r"Bot address: (\S+)", line)
                address = m.group(1) if m else None
        assert address.startswith("parley:/contact#")
        assert (folder / "squaring_bot_chat.db").exists()  # the script's SqliteDb prefix

        user = await make_chat("user", [str(relay.address)])
        await user.connect(address)
        contact = await expect(user, cev.ContactConnected, timeout=30)
        assert contact.contact.display_name == "Squaring bot"
        welcome = await expect(user, cev.NewChatItem, timeout=30)
        assert welcome.item.text == "Send me a number, I'll square it."
        await user.send_contact_message(contact.contact.name, "7")
        answer = await expect(
            user, cev.NewChatItem, timeout=30, where=lambda e: e.item.direction == "rcv"
        )
        assert answer.item.text == "7.0 * 7.0 = 49.0"
        await user.send_contact_message(contact.contact.name, "hello")
        answer = await expect(
            user, cev.NewChatItem, timeout=30, where=lambda e: e.item.direction == "rcv"
        )
        assert answer.item.text == "Send me a number, like 7 or 3.14."
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(20):
                    rest = await proc.stdout.read()
                    lines.append(rest.decode())
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, "".join(lines)


def test_parley_bot_without_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from parley.cli import main

    relay = "parley://" + "A" * 43 + "@127.0.0.1:5223"
    assert main(["bot", str(tmp_path / "nope.py"), "-s", relay]) == 2
    assert "no such script" in capsys.readouterr().err


def test_json_sanity() -> None:
    assert json.loads(CC.APIShowMyAddress_cmd_string({"userId": 1}).split()[1]) == 1
