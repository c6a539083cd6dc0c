"""`parley demo`: a group of chat clients forming under injected faults.

- :mod:`parley.demo.faults`: the seeded fault schedule;
- :mod:`parley.demo.scenario`: the orchestration, UI-free (also used by tests/chaos and
  bench/group.py);
- :mod:`parley.demo.view`: live progress and the summary, with rich or as plain lines.
"""
