"""Crash points: SIGKILL this process at a named step, for tests of recovery.

`PARLEY_CRASH_AT="k:allowed,msg:x.grp.mem.intro@2"` kills the process the first time it
reaches step `k:allowed`, or the second time it reaches `msg:x.grp.mem.intro`. Unset (the
normal case), a crash point costs one dictionary lookup. docs/recovery.md lists the steps.
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("PARLEY_CRASH_AT", "")
_POINTS: dict[str, int] = {}
for _item in filter(None, (x.strip() for x in _SPEC.split(","))):
    _name, _, _nth = _item.partition("@")
    _POINTS[_name] = int(_nth or 1)
_SEEN: dict[str, int] = {}


def crash_point(name: str) -> None:
    if not _POINTS or name not in _POINTS:
        return
    _SEEN[name] = _SEEN.get(name, 0) + 1
    if _SEEN[name] == _POINTS[name]:
        os.kill(os.getpid(), signal.SIGKILL)
