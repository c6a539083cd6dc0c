"""The chat protocol codec: round trips, every validation rule, and garbage raises only
ChatMessageError."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.protocol import chat as c

DOCS = Path(__file__).resolve().parents[2] / "docs" / "chat-protocol.md"
ID = "AAAAAAAAAAAAAAAA"
ID2 = "BBBBBBBBBBBBBBBB"

# ---------------------------------------------------------------- strategies

ids = st.binary(min_size=12, max_size=12).map(lambda b: base64.urlsafe_b64encode(b).decode())
_no_control = st.characters(
    codec="utf-8",
    exclude_categories=("Cc", "Cs", "Zl", "Zp"),
)
names = st.text(_no_control, min_size=1, max_size=100).filter(lambda s: not s.isspace())
full_names = st.text(_no_control, max_size=200)
texts = st.text(st.characters(codec="utf-8"), max_size=300)
links = st.text(st.characters(codec="utf-8"), min_size=1, max_size=200)
roles = st.sampled_from(c.MEMBER_ROLES)

profiles = st.builds(c.Profile, names, full_names)
group_profiles = st.builds(c.GroupProfile, names, full_names)
member_infos = st.builds(c.MemberInfo, ids, roles, profiles)
intros = st.builds(c.IntroInvitation, links, links)

params_by_event: dict[str, st.SearchStrategy[c.Params]] = {
    c.X_INFO: st.builds(c.XInfo, profiles),
    c.X_OK: st.builds(c.XOk, profiles),
    c.X_MSG_NEW: st.builds(
        c.XMsgNew,
        st.builds(c.TextContent, texts),
        st.none()
        | st.builds(
            c.QuotedMsg,
            st.builds(c.MsgRef, ids, st.booleans(), st.none() | ids),
            st.builds(c.TextContent, texts),
        ),
    ),
    c.X_MSG_UPDATE: st.builds(
        c.XMsgUpdate, ids, st.builds(c.TextContent, texts), st.integers(1, 1000)
    ),
    c.X_MSG_DEL: st.builds(c.XMsgDel, ids, st.none() | ids),
    c.X_MSG_REACT: st.builds(
        c.XMsgReact,
        ids,
        st.builds(c.Reaction, st.sampled_from(["👍", "❤️", "😂", "🚀", "👍🏽", "🇺🇦"])),
        st.booleans(),
        st.none() | ids,
    ),
    c.X_GRP_INV: st.tuples(ids, ids, roles, roles, links, group_profiles)
    .filter(lambda t: t[0] != t[1])
    .map(lambda t: c.XGrpInv(c.MemberIdRole(t[0], t[2]), c.MemberIdRole(t[1], t[3]), t[4], t[5])),
    c.X_GRP_ACPT: st.builds(c.XGrpAcpt, ids),
    c.X_GRP_MEM_NEW: st.builds(c.XGrpMemNew, member_infos),
    c.X_GRP_MEM_INTRO: st.builds(c.XGrpMemIntro, member_infos),
    c.X_GRP_MEM_INV: st.builds(c.XGrpMemInv, ids, intros),
    c.X_GRP_MEM_FWD: st.builds(c.XGrpMemFwd, member_infos, intros),
    c.X_GRP_MEM_INFO: st.builds(c.XGrpMemInfo, ids, profiles),
    c.X_GRP_MEM_CON: st.builds(c.XGrpMemCon, ids),
    c.X_GRP_MEM_CON_ALL: st.builds(c.XGrpMemConAll, ids),
    c.X_GRP_LEAVE: st.just(c.XGrpLeave()),
    c.X_GRP_MEM_DEL: st.builds(c.XGrpMemDel, ids),
    c.X_GRP_DEL: st.just(c.XGrpDel()),
    c.X_CONTACT: st.builds(c.XContact, profiles, ids),
    c.X_GRP_MEM_ROLE: st.builds(c.XGrpMemRole, ids, roles),
    c.X_GRP_LINK_MEM: st.builds(
        c.XGrpLinkMem, group_profiles, member_infos, st.builds(c.MemberIdRole, ids, roles)
    ),
    c.X_GRP_INFO: st.builds(c.XGrpInfo, group_profiles),
}
plain_messages = st.builds(c.ChatMessage, ids, st.one_of(*params_by_event.values()))
params_by_event[c.X_GRP_MSG_FORWARD] = st.builds(c.XGrpMsgForward, ids, plain_messages)
messages = st.builds(c.ChatMessage, ids, st.one_of(*params_by_event.values()))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def raw(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def envelope(event: str, params: Any, **extra: Any) -> dict[str, Any]:
    return {"v": 1, "msgId": ID, "event": event, "params": params, **extra}


def reason_of(data: bytes) -> str:
    with pytest.raises(c.ChatMessageError) as info:
        c.decode_chat_message(data)
    return info.value.reason


def decode_or_error(data: bytes) -> None:
    try:
        msg = c.decode_chat_message(data)
    except c.ChatMessageError as e:
        assert e.reason
        return
    assert isinstance(msg, c.ChatMessage)


# ---------------------------------------------------------------- round trips


@given(messages)
def test_round_trip(msg: c.ChatMessage) -> None:
    data = c.encode_chat_message(msg)
    assert c.decode_chat_message(data) == msg
    obj = json.loads(data)
    assert list(obj) == ["v", "msgId", "event", "params"]
    assert obj["v"] == 1 and obj["event"] == msg.event == type(msg.params).event


@pytest.mark.parametrize("event", sorted(c.EVENTS))
@settings(max_examples=25)
@given(data=st.data())
def test_round_trip_of_each_event(event: str, data: st.DataObject) -> None:
    msg = c.ChatMessage(data.draw(ids), data.draw(params_by_event[event]))
    assert c.decode_chat_message(c.encode_chat_message(msg)) == msg


def test_every_event_has_a_params_type() -> None:
    assert set(c.PARAMS_TYPES) == c.EVENTS == set(params_by_event)
    assert len(c.EVENTS) == 23
    constants = {v for k, v in vars(c).items() if k.startswith("X_") and isinstance(v, str)}
    assert constants == c.EVENTS
    for event, cls in c.PARAMS_TYPES.items():
        assert cls.event == event
    assert c.FORWARDABLE_EVENTS <= c.EVENTS
    assert c.X_GRP_MSG_FORWARD not in c.FORWARDABLE_EVENTS


def test_wire_form_is_camel_case() -> None:
    msg = c.ChatMessage(
        ID,
        c.XGrpMemFwd(
            c.MemberInfo(ID2, "admin", c.Profile("bob", "Bob B")),
            c.IntroInvitation("parley:/invite#g", "parley:/invite#d"),
        ),
    )
    assert json.loads(c.encode_chat_message(msg)) == {
        "v": 1,
        "msgId": ID,
        "event": "x.grp.mem.fwd",
        "params": {
            "memberInfo": {
                "memberId": ID2,
                "memberRole": "admin",
                "profile": {"displayName": "bob", "fullName": "Bob B"},
            },
            "memberIntro": {
                "groupConnReq": "parley:/invite#g",
                "directConnReq": "parley:/invite#d",
            },
        },
    }
    text = c.encode_chat_message(c.ChatMessage(ID, c.XMsgNew(c.TextContent("hi"))))
    assert json.loads(text)["params"] == {"content": {"type": "text", "text": "hi"}}
    assert json.loads(c.encode_chat_message(c.ChatMessage(ID, c.XGrpLeave())))["params"] == {}


def test_forward_nests_the_original_message() -> None:
    original = c.make(c.XMsgNew(c.TextContent("hello")))
    fwd = c.forward(ID2, original)
    assert fwd.msg_id != original.msg_id
    obj = json.loads(c.encode_chat_message(fwd))
    assert obj["event"] == "x.grp.msg.forward"
    assert obj["params"]["memberId"] == ID2
    assert obj["params"]["msg"] == json.loads(c.encode_chat_message(original))
    back = c.decode_chat_message(c.encode_chat_message(fwd))
    assert isinstance(back.params, c.XGrpMsgForward)
    assert back.params.msg == original


def test_docs_examples_decode() -> None:
    """Every ```json block in docs/chat-protocol.md is a valid message that re-encodes to
    the same JSON."""
    blocks = re.findall(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 16
    seen = set()
    for block in blocks:
        msg = c.decode_chat_message(block.encode())
        seen.add(msg.event)
        assert json.loads(c.encode_chat_message(msg)) == json.loads(block)
    assert seen == c.EVENTS


# ---------------------------------------------------------------- helpers


def test_new_ids() -> None:
    got = {c.new_msg_id() for _ in range(100)} | {c.new_member_id() for _ in range(100)}
    assert len(got) == 200
    for i in got:
        assert c.is_valid_id(i)
        assert len(base64.urlsafe_b64decode(i)) == 12


def test_make_uses_given_or_fresh_id() -> None:
    assert c.make(c.XGrpDel(), ID).msg_id == ID
    a, b = c.make(c.XGrpDel()), c.make(c.XGrpDel())
    assert a.msg_id != b.msg_id and a.event == "x.grp.del"


@pytest.mark.parametrize(
    "value",
    ["", "A" * 15, "A" * 17, "AAAAAAAAAAAAAAA=", "AAAAAAAAAAAAAAA+", "AAAAAAAAAAAAAAA/",
     "AAAAAAAAAAAAAAAA\n", "AAAAAAAAAAAAAAA ", "ÄAAAAAAAAAAAAAAA", 123, None],
)  # fmt: skip
def test_bad_ids(value: object) -> None:
    assert not c.is_valid_id(value)
    reason = reason_of(raw({"v": 1, "msgId": value, "event": "x.grp.del", "params": {}}))
    assert reason.startswith("bad msgId")
    reason = reason_of(raw(envelope("x.grp.mem.con", {"memberId": value})))
    assert reason.startswith("invalid params for x.grp.mem.con")
    assert "memberId" in reason


# ---------------------------------------------------------------- garbage


@given(st.binary(max_size=400))
def test_garbage_bytes_raise_only_chat_message_error(data: bytes) -> None:
    decode_or_error(data)


@given(json_values)
def test_random_json_raises_only_chat_message_error(value: Any) -> None:
    decode_or_error(raw(value))


@given(st.sampled_from(sorted(c.EVENTS)), json_values, st.booleans())
def test_random_params_raise_only_chat_message_error(event: str, params: Any, fwd: bool) -> None:
    msg = envelope(event, params)
    if fwd:
        msg = envelope(c.X_GRP_MSG_FORWARD, {"memberId": ID2, "msg": msg})
    decode_or_error(raw(msg))


@settings(max_examples=300)
@given(messages, st.data())
def test_mutated_messages_raise_only_chat_message_error(msg: c.ChatMessage, data: Any) -> None:
    encoded = bytearray(c.encode_chat_message(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(encoded) - 1))
        encoded[i] = data.draw(st.integers(0, 255))
    decode_or_error(bytes(encoded))


@pytest.mark.parametrize(
    "data",
    [b"", b" ", b"{", b"null", b"\xff\xfe", b'{"v":1}}', b"[" * 5000, b'{"a":' * 2900,
     b'"\\ud800"', b"\xed\xa0\x80", b"1e999", b"NaN"],
)  # fmt: skip
def test_invalid_json(data: bytes) -> None:
    reason = reason_of(data)
    assert reason.startswith("invalid JSON") or reason == "message is not a JSON object"


def test_error_is_a_value_error() -> None:
    assert issubclass(c.ChatMessageError, ValueError)


# ---------------------------------------------------------------- envelope rules


@pytest.mark.parametrize("value", [[], "x", 1, None, True, [envelope("x.grp.del", {})]])
def test_not_an_object(value: Any) -> None:
    assert reason_of(raw(value)) == "message is not a JSON object"


@pytest.mark.parametrize("v", [0, 2, -1, "1", 1.0, True, None, [1], 10**30])
def test_unknown_version(v: Any) -> None:
    assert reason_of(raw({**envelope("x.grp.del", {}), "v": v})).startswith("unknown version")


def test_missing_envelope_fields() -> None:
    full = envelope("x.grp.del", {})
    for key, reason in [
        ("v", "message has no version (v)"),
        ("msgId", "message has no msgId"),
        ("event", "message has no event name"),
        ("params", "missing params for x.grp.del"),
    ]:
        assert reason_of(raw({k: v for k, v in full.items() if k != key})) == reason


def test_event_must_be_a_string() -> None:
    assert reason_of(raw({**envelope("x", {}), "event": 5})) == "message has no event name"


def test_unknown_event() -> None:
    with pytest.raises(c.ChatMessageError) as info:
        c.decode_chat_message(raw(envelope("x.y", {})))
    assert info.value.reason == str(info.value) == "unknown event x.y"
    assert info.value.event == "x.y" and info.value.msg_id == ID
    long = "x." + "a" * 500
    assert len(reason_of(raw(envelope(long, {})))) < 100
    assert reason_of(raw(envelope("x.\x1b[2J", {}))) == "unknown event 'x.\\x1b[2J'"


@pytest.mark.parametrize("params", [None, [], "x", 1])
def test_params_must_be_an_object(params: Any) -> None:
    assert (
        reason_of(raw(envelope("x.grp.del", params))) == "params of x.grp.del is not a JSON object"
    )


def test_unknown_fields_are_ignored() -> None:
    msg = envelope(
        "x.grp.mem.new",
        {
            "memberInfo": {
                "memberId": ID,
                "memberRole": "member",
                "profile": {"displayName": "bob", "image": "...", "preferences": {}},
                "v": "1-2",
            },
            "future": [1, 2, 3],
        },
        later={"x": 1},
    )
    got = c.decode_chat_message(raw(msg))
    assert got == c.ChatMessage(ID, c.XGrpMemNew(c.MemberInfo(ID, "member", c.Profile("bob"))))
    assert c.decode_chat_message(raw(envelope("x.grp.leave", {"reason": "bye"}))).params == (
        c.XGrpLeave()
    )


# ---------------------------------------------------------------- params rules


def test_missing_and_wrongly_typed_params() -> None:
    assert reason_of(raw(envelope("x.info", {}))).startswith("invalid params for x.info:")
    assert "profile" in reason_of(raw(envelope("x.info", {})))
    reason = reason_of(raw(envelope("x.info", {"profile": {"displayName": 5}})))
    assert (
        reason
        == "invalid params for x.info: Expected `str`, got `int` - at `$.profile.displayName`"
    )
    assert "fullName" in reason_of(
        raw(envelope("x.ok", {"profile": {"displayName": "a", "fullName": None}}))
    )
    assert "memberIntro" in reason_of(raw(envelope("x.grp.mem.inv", {"memberId": ID})))


def test_invalid_params_carry_event_and_msg_id() -> None:
    with pytest.raises(c.ChatMessageError) as info:
        c.decode_chat_message(raw(envelope("x.grp.acpt", {})))
    assert (info.value.event, info.value.msg_id) == ("x.grp.acpt", ID)


def profile_msg(name: str, full: str = "") -> bytes:
    return raw(envelope("x.info", {"profile": {"displayName": name, "fullName": full}}))


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "displayName is empty"),
        (" ", "displayName is only whitespace"),
        ("\t \u3000", "displayName is only whitespace"),
        ("a" * 101, "displayName is longer than 100 characters"),
        ("bob\n", "displayName contains a control character"),
        ("bo\x00b", "displayName contains a control character"),
        ("\x1b[31mred", "displayName contains a control character"),
        ("a\x7fb", "displayName contains a control character"),
        ("a\x85b", "displayName contains a control character"),
        ("a\u2028b", "displayName contains a control character"),
    ],
)
def test_display_name_rules(name: str, reason: str) -> None:
    assert reason_of(profile_msg(name)) == f"invalid params for x.info: {reason} - at `$.profile`"
    with pytest.raises(c.ChatMessageError, match=re.escape(reason)):
        c.Profile(name)
    with pytest.raises(c.ChatMessageError, match=re.escape(reason)):
        c.GroupProfile(name)


@pytest.mark.parametrize("name", ["a", "a" * 100, "🙂" * 100, "Bob Smith", " bob ", "ä—ß", "👩‍💻"])
def test_display_names_accepted(name: str) -> None:
    assert c.decode_chat_message(profile_msg(name)).params == c.XInfo(c.Profile(name))


def test_full_name_rules() -> None:
    assert c.decode_chat_message(profile_msg("a", "")).params == c.XInfo(c.Profile("a"))
    assert c.decode_chat_message(profile_msg("a", " ")).params == c.XInfo(c.Profile("a", " "))
    assert "fullName contains a control character" in reason_of(profile_msg("a", "x\x1b"))
    assert "fullName is longer than 200" in reason_of(profile_msg("a", "x" * 201))


def test_group_profile_rules() -> None:
    def inv(profile: Any) -> bytes:
        return raw(
            envelope(
                "x.grp.inv",
                {
                    "fromMember": {"memberId": ID, "memberRole": "owner"},
                    "invitedMember": {"memberId": ID2, "memberRole": "member"},
                    "connRequest": "parley:/invite#x",
                    "groupProfile": profile,
                },
            )
        )

    ok = c.decode_chat_message(inv({"displayName": "team"}))
    assert isinstance(ok.params, c.XGrpInv)
    assert ok.params.group_profile == c.GroupProfile("team")
    assert "group displayName is empty" in reason_of(inv({"displayName": ""}))
    assert "at `$.groupProfile`" in reason_of(inv({"displayName": "\n"}))


def test_roles() -> None:
    def new(role: Any) -> bytes:
        return raw(
            envelope(
                "x.grp.mem.new",
                {
                    "memberInfo": {
                        "memberId": ID,
                        "memberRole": role,
                        "profile": {"displayName": "b"},
                    }
                },
            )
        )

    for role in c.MEMBER_ROLES:
        got = c.decode_chat_message(new(role)).params
        assert isinstance(got, c.XGrpMemNew) and got.member_info.member_role == role
    for bad in ["Owner", "creator", "", 1, None]:
        assert "memberRole" in reason_of(new(bad))


def test_group_invitation_rules() -> None:
    base = {
        "fromMember": {"memberId": ID, "memberRole": "owner"},
        "invitedMember": {"memberId": ID2, "memberRole": "member"},
        "connRequest": "parley:/invite#x",
        "groupProfile": {"displayName": "team"},
    }
    assert reason_of(raw(envelope("x.grp.inv", {**base, "connRequest": ""}))).endswith(
        "empty connRequest"
    )
    same = {**base, "invitedMember": {"memberId": ID, "memberRole": "member"}}
    assert "same memberId" in reason_of(raw(envelope("x.grp.inv", same)))
    bad_member = {**base, "fromMember": {"memberId": "short", "memberRole": "owner"}}
    assert "at `$.fromMember`" in reason_of(raw(envelope("x.grp.inv", bad_member)))


def test_intro_links_must_not_be_empty() -> None:
    params = {"memberId": ID, "memberIntro": {"groupConnReq": "a", "directConnReq": ""}}
    assert "empty invitation link" in reason_of(raw(envelope("x.grp.mem.inv", params)))
    with pytest.raises(c.ChatMessageError):
        c.IntroInvitation("", "b")


def test_content_rules() -> None:
    def new(content: Any) -> bytes:
        return raw(envelope("x.msg.new", {"content": content}))

    got = c.decode_chat_message(new({"type": "text", "text": ""})).params
    assert got == c.XMsgNew(c.TextContent(""))
    assert c.decode_chat_message(new({"text": "a\nb", "type": "text"})).params == c.XMsgNew(
        c.TextContent("a\nb")
    )
    assert "missing content type" in reason_of(new({"text": "a"}))
    assert "$.content.type" in reason_of(new({"type": "image", "text": "a"}))
    assert "missing required field `text` - at `$.content`" in reason_of(new({"type": "text"}))
    assert "content" in reason_of(new("hello"))
    assert "content" in reason_of(raw(envelope("x.msg.new", {})))


# ---------------------------------------------------------------- forwarding


def fwd_envelope(inner: Any, author: Any = ID2) -> bytes:
    return raw(envelope(c.X_GRP_MSG_FORWARD, {"memberId": author, "msg": inner}))


def test_forwarded_message_is_validated() -> None:
    good = envelope("x.msg.new", {"content": {"type": "text", "text": "hi"}}, msgId=ID2)
    got = c.decode_chat_message(fwd_envelope(good))
    assert got.params == c.XGrpMsgForward(ID2, c.ChatMessage(ID2, c.XMsgNew(c.TextContent("hi"))))
    cases = [
        ("x", "forwarded message: forwarded message is not a JSON object"),
        ({**good, "v": 2}, "forwarded message: unknown version 2"),
        ({**good, "msgId": "x"}, "forwarded message: bad msgId"),
        ({**good, "event": "x.y"}, "forwarded message: unknown event x.y"),
        ({**good, "params": {}}, "forwarded message: invalid params for x.msg.new"),
        ({k: v for k, v in good.items() if k != "params"}, "forwarded message: missing params"),
    ]
    for inner, reason in cases:
        with pytest.raises(c.ChatMessageError) as info:
            c.decode_chat_message(fwd_envelope(inner))
        assert info.value.reason.startswith(reason)
        assert info.value.event == c.X_GRP_MSG_FORWARD and info.value.msg_id == ID


def test_forward_params_rules() -> None:
    good = envelope("x.grp.leave", {})
    assert "memberId" in reason_of(fwd_envelope(good, author="nope"))
    assert "memberId" in reason_of(raw(envelope(c.X_GRP_MSG_FORWARD, {"msg": good})))
    assert reason_of(raw(envelope(c.X_GRP_MSG_FORWARD, {"memberId": ID2}))) == (
        "invalid params for x.grp.msg.forward: missing msg"
    )


def test_forward_of_forward_is_rejected() -> None:
    inner = envelope(c.X_GRP_MSG_FORWARD, {"memberId": ID, "msg": envelope("x.grp.del", {})})
    assert reason_of(fwd_envelope(inner)) == (
        "forwarded message: x.grp.msg.forward cannot be forwarded"
    )
    once = c.forward(ID, c.make(c.XGrpDel()))
    with pytest.raises(c.ChatMessageError, match="cannot be forwarded"):
        c.forward(ID2, once)
    with pytest.raises(c.ChatMessageError, match="cannot be forwarded"):
        c.XGrpMsgForward(ID2, once)


# ---------------------------------------------------------------- size


def text_message_of_size(size: int) -> c.ChatMessage:
    empty = len(c.encode_chat_message(c.ChatMessage(ID, c.XMsgNew(c.TextContent("")))))
    msg = c.ChatMessage(ID, c.XMsgNew(c.TextContent("x" * (size - empty))))
    return msg


def test_original_size_limit() -> None:
    at = text_message_of_size(c.MAX_ORIGINAL_MESSAGE)
    data = c.encode_chat_message(at)
    assert len(data) == c.MAX_ORIGINAL_MESSAGE
    assert c.decode_chat_message(data) == at
    over = text_message_of_size(c.MAX_ORIGINAL_MESSAGE + 1)
    with pytest.raises(c.ChatMessageError, match="message too large: 14601 bytes") as info:
        c.encode_chat_message(over)
    assert info.value.event == "x.msg.new"
    big = json.dumps(envelope("x.msg.new", {"content": {"type": "text", "text": "x" * 14600}}))
    assert reason_of(big.encode()).startswith("message too large")
    padded = data[:-1] + b" " * 100 + data[-1:]  # whitespace counts: the limit is on bytes
    assert reason_of(padded).startswith("message too large")


def test_multibyte_text_counts_bytes() -> None:
    empty = len(c.encode_chat_message(c.ChatMessage(ID, c.XMsgNew(c.TextContent("")))))
    n = (c.MAX_ORIGINAL_MESSAGE - empty) // 4
    c.encode_chat_message(c.ChatMessage(ID, c.XMsgNew(c.TextContent("🙂" * n))))
    with pytest.raises(c.ChatMessageError, match="too large"):
        c.encode_chat_message(c.ChatMessage(ID, c.XMsgNew(c.TextContent("🙂" * (n + 1)))))


def test_largest_original_can_be_forwarded() -> None:
    at = text_message_of_size(c.MAX_ORIGINAL_MESSAGE)
    fwd = c.ChatMessage(ID2, c.XGrpMsgForward(ID2, at))
    data = c.encode_chat_message(fwd)
    assert len(data) <= c.MAX_CHAT_MESSAGE
    assert c.decode_chat_message(data) == fwd


def test_absolute_size_limit() -> None:
    data = b" " * (c.MAX_CHAT_MESSAGE + 1)
    assert reason_of(data) == "message too large: 14801 bytes (limit 14800)"
    at = text_message_of_size(c.MAX_ORIGINAL_MESSAGE)
    data = c.encode_chat_message(c.ChatMessage(ID, c.XGrpMsgForward(ID2, at)))
    padded = data[:-1] + b" " * (c.MAX_CHAT_MESSAGE - len(data)) + data[-1:]
    assert len(padded) == c.MAX_CHAT_MESSAGE
    c.decode_chat_message(padded)
    assert reason_of(padded[:-1] + b" " + padded[-1:]).startswith("message too large")


# ---------------------------------------------------------------- encoding checks


def test_encode_rejects_invalid_messages() -> None:
    bad_role = c.ChatMessage(ID, c.XGrpMemNew(c.MemberInfo(ID, cast(Any, "boss"), c.Profile("b"))))
    with pytest.raises(c.ChatMessageError, match="memberRole"):
        c.encode_chat_message(bad_role)
    surrogate = c.ChatMessage(ID, c.XMsgNew(c.TextContent("\ud800")))
    with pytest.raises(c.ChatMessageError, match=re.escape("cannot encode x.msg.new")):
        c.encode_chat_message(surrogate)
    wrong_type = c.ChatMessage(ID, c.XMsgNew(c.TextContent(cast(Any, b"bytes"))))
    with pytest.raises(c.ChatMessageError, match="wrong type"):
        c.encode_chat_message(wrong_type)


def test_constructors_validate() -> None:
    builds: list[Callable[[], object]] = [
        lambda: c.ChatMessage("short", c.XGrpDel()),
        lambda: c.XGrpAcpt("x"),
        lambda: c.XGrpMemCon("x"),
        lambda: c.XGrpMemConAll("x"),
        lambda: c.XGrpMemDel("x"),
        lambda: c.XGrpMemInv("x", c.IntroInvitation("a", "b")),
        lambda: c.XGrpMemInfo("x", c.Profile("a")),
        lambda: c.MemberIdRole("x", "member"),
        lambda: c.MemberInfo("x", "member", c.Profile("a")),
        lambda: c.XGrpMsgForward("x", c.make(c.XGrpDel())),
        lambda: c.Profile(""),
        lambda: c.make(c.XGrpDel(), "bad"),
    ]
    for build in builds:
        with pytest.raises(c.ChatMessageError):
            build()


@pytest.mark.parametrize("emoji", ["", "a", "👍 ", "👍👍👍👍👍👍👍👍👍", "!", "\x00", "ok👍"])
def test_a_reaction_is_one_emoji(emoji: str) -> None:
    data = raw(
        envelope(
            c.X_MSG_REACT,
            {"msgId": ID, "reaction": {"type": "emoji", "emoji": emoji}, "add": True},
        )
    )
    with pytest.raises(c.ChatMessageError, match="emoji"):
        c.decode_chat_message(data)
