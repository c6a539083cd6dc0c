"""What keeps the long-running loops (agent, chat, bot API, terminal) going past a failure."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def failure_logged(log: logging.Logger, message: str, *args: object) -> Iterator[None]:
    """Log an exception of the block (`message % args`, with the traceback) instead of
    raising it, so that one failed pass does not end the loop around it. Cancellation
    still ends it (CancelledError is not an Exception)."""
    try:
        yield
    except Exception:
        log.exception(message, *args)
