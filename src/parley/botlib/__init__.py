"""Run bots written for SimpleX's official Python library on parley's chat.

The library (``simplex-chat`` 7.x on PyPI) reaches its chat core through four calls in
``simplex_chat.core``: ``chat_migrate_init``, ``chat_send_cmd``, ``chat_recv_msg_wait``
and ``chat_close_store``. `LibraryBackend` answers them with a parley `ChatController`
in the same process, speaking the current bot API through `parley.api.handlers`, so a bot
script runs unmodified and without the native library. ``parley bot SCRIPT.py -s RELAY``
installs it and runs the script (docs/bot-api.md, "The Python library backend").
"""

from parley.botlib.backend import LibraryBackend

__all__ = ["LibraryBackend"]
