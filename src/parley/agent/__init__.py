"""parley.agent: duplex encrypted connections over relay queues, run as durable commands.

Use `from parley.agent import Agent, AgentConfig` and `from parley.agent import events as ev`.
The rooms: `agent` (the front class), `book`, `scheduler`, `steps`, `inbound`, `receive`,
`delivery`, `subscriptions`, `relays`, `store` (all SQL), `model` (types and errors).
"""

from parley.agent import events as events
from parley.agent.agent import Agent as Agent
from parley.agent.model import AgentConfig as AgentConfig
from parley.agent.model import AgentError as AgentError
from parley.agent.model import ConnectionStatus as ConnectionStatus
from parley.agent.model import DuplicateCommand as DuplicateCommand
from parley.agent.model import EncryptionRenegotiating as EncryptionRenegotiating
from parley.agent.model import PendingCommand as PendingCommand
from parley.agent.model import PendingDelivery as PendingDelivery
from parley.agent.model import PendingReport as PendingReport
