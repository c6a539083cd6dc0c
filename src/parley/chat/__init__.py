"""parley.chat: contacts and groups on top of the agent, driven by persisted continuations.

Use `from parley.chat import ChatController, ChatConfig` and `from parley.chat import events
as cev` (the views and events front ends get). The rooms: `controller` (the front class),
`subscriber`, `contacts`, `groups`, `introductions`, `handshake`, `inbox`, `continuations`,
`recovery`, `views`, `effects` and `engine`, `connections`, `store` (all SQL), `model`
(names, statuses, configuration), `commands` (the terminal's command parser), `crash`
(crash points for tests).
"""

from parley.chat import events as events
from parley.chat.controller import ChatController as ChatController
from parley.chat.events import ChatEvent as ChatEvent
from parley.chat.events import ChatItem as ChatItem
from parley.chat.events import Contact as Contact
from parley.chat.events import Group as Group
from parley.chat.events import Member as Member
from parley.chat.events import User as User
from parley.chat.model import ChatConfig as ChatConfig
from parley.chat.model import ChatError as ChatError
