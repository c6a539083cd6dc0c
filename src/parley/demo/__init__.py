"""`parley demo`: a group of chat clients forming under injected faults.

- :mod:`parley.demo.faults`: the seeded fault schedule;
- :mod:`parley.demo.scenario`: the orchestration, UI-free (also used by tests/chaos and
  bench/group.py); its rooms: :mod:`~parley.demo.config` and :mod:`~parley.demo.progress`
  (the data), :mod:`~parley.demo.stage` (relays, proxies, clients),
  :mod:`~parley.demo.clients`, :mod:`~parley.demo.group` (contacts, invitations),
  :mod:`~parley.demo.fault_runner`, :mod:`~parley.demo.polling`,
  :mod:`~parley.demo.messages`, :mod:`~parley.demo.stall`, :mod:`~parley.demo.report`;
- :mod:`parley.demo.field`: the field scenario (harsh faults, default timers);
- :mod:`parley.demo.view`: live progress and the summary, with rich or as plain lines.
"""
