"""`parley.testing.chat_process` serving the chat's newer calls too (addresses, contact
requests, group links, roles, profiles), so tests can SIGKILL a chat that uses them.

`Proc` is the parent's side; `python -m tests.chat.proc` the child (run from the
repository's root, as pytest is).
"""

from __future__ import annotations

from typing import Any

from parley.testing import chat_process

MORE_OPS = frozenset(
    {
        "create_address",
        "show_address",
        "delete_address",
        "set_auto_accept",
        "contact_requests",
        "accept_contact_request",
        "reject_contact_request",
        "contact_request_named",
        "create_group_link",
        "group_link",
        "set_group_link_role",
        "delete_group_link",
        "set_member_role",
        "update_profile",
    }
)


class Proc(chat_process.ChatProcess):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.module = "tests.chat.proc"


if __name__ == "__main__":
    chat_process.OPS = chat_process.OPS | MORE_OPS  # serve() reads it at each request
    chat_process.main()
