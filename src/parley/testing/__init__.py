"""parley.testing: helpers for testing parley and deployments built on it.

* :class:`FaultProxy` (``parley.testing.proxy``): a TCP proxy that injects
  network faults between agents and a relay;
* :func:`wait_for_condition` (``parley.testing.waiting``): poll a condition
  with a deadline instead of sleeping.

See docs/testing.md.
"""

from parley.testing.proxy import FaultProxy, ProxyStats
from parley.testing.waiting import wait_for_condition

__all__ = ["FaultProxy", "ProxyStats", "wait_for_condition"]
