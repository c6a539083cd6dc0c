"""A chat process with an address, auto-accept and a welcome message serves three users;
it is SIGKILLed and started again between users and keeps the same address."""

from __future__ import annotations

from pathlib import Path

from parley.chat import events as cev
from parley.relay.server import RelayServer
from tests.chat.proc import Proc


def received(e: cev.NewChatItem) -> bool:
    return e.item.direction == "rcv"


async def test_address_serves_three_users_across_sigkills(
    relay: RelayServer, tmp_path: Path
) -> None:
    relays = [str(relay.address)]
    owner = Proc(tmp_path / "owner", relays, "owner")
    await owner.start()
    users: list[Proc] = []
    try:
        link = await owner.call("create_address")
        await owner.call("set_auto_accept", on=True, welcome="hello from the owner")
        for i, name in enumerate(["u1", "u2", "u3"]):
            await owner.kill()
            # the second time, the owner is down while the user asks: the request waits
            # on the relay
            if i != 1:
                await owner.start()
            user = Proc(tmp_path / name, relays, name)
            users.append(user)
            await user.start()
            await user.call("connect", link=link)
            if i == 1:
                await owner.start()
            shown = await owner.call("show_address")
            assert shown == {"link": link, "auto_accept": True, "welcome": "hello from the owner"}
            await user.expect(cev.ContactConnected, lambda e: e.contact.name == "owner", 60)
            got = await user.expect(cev.NewChatItem, None, 60)
            assert got.item.text == "hello from the owner"
            await user.call("send_contact_message", name="owner", text=f"hi from {name}")
            item = await owner.expect(cev.NewChatItem, received, 60)
            assert item.item.text == f"hi from {name}"
        contacts = await owner.call("contacts")
        assert sorted(c["name"] for c in contacts) == ["u1", "u2", "u3"]
        for user in users:  # exactly one welcome each
            items = await user.call("chat_items", contact="owner")
            texts = [x["text"] for x in items if x["direction"] == "rcv"]
            assert texts == ["hello from the owner"]
    finally:
        await owner.kill()
        for user in users:
            await user.kill()
