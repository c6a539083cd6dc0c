"""Waiting for a condition with a deadline, the way tests synchronise.

Tests must not use bare ``asyncio.sleep`` calls to "give something time to
happen": that is slow when the machine is fast and flaky when it is slow.
Instead they poll the state they depend on with :func:`wait_for_condition`,
which returns as soon as the condition holds and fails loudly when it never
does.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

__all__ = ["wait_for_condition"]


async def wait_for_condition(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float = 10.0,
    interval: float = 0.01,
    message: str = "",
) -> None:
    """Poll ``predicate`` until it is true, or raise :class:`TimeoutError`.

    ``predicate`` may be a plain function or one returning an awaitable (for
    example an ``async def``); it is first evaluated at once, then every
    ``interval`` seconds. The whole wait, including the time spent awaiting an
    asynchronous predicate, is bounded by ``timeout`` seconds. On expiry the
    error carries ``message`` (or a generic description when it is empty).
    Exceptions raised by the predicate itself propagate unchanged.
    """
    if timeout < 0:
        raise ValueError(f"timeout must not be negative, got {timeout!r}")
    if interval <= 0:
        raise ValueError(f"interval must be positive, got {interval!r}")
    deadline = asyncio.get_running_loop().time() + timeout
    scope = asyncio.timeout_at(deadline)
    try:
        async with scope:
            # Polling is deliberate: the predicate may inspect any state, and
            # there is no event to wait on in general.
            while not await _evaluate(predicate):  # noqa: ASYNC110
                await asyncio.sleep(interval)
    except TimeoutError:
        if not scope.expired():
            raise  # raised by the predicate, not by our deadline
        raise TimeoutError(message or f"condition not met within {timeout:g} s") from None


async def _evaluate(predicate: Callable[[], bool | Awaitable[bool]]) -> bool:
    result = predicate()
    if inspect.isawaitable(result):
        return bool(await result)
    return bool(result)
