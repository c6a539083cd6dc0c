from tests.agent.conftest import make_agent  # noqa: F401  (fixture)
from tests.relay.conftest import relay  # noqa: F401  (fixture)
