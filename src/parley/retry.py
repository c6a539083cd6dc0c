"""Retry timing shared by the relay client and the agent: exponential backoff with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """`initial` seconds, then ×`factor` per attempt up to `cap`, each spread by ±`jitter`.

    The jitter (a share of the delay) keeps a thousand clients that failed together from
    retrying together.
    """

    initial: float = 1.0
    factor: float = 1.5
    cap: float = 60.0
    jitter: float = 0.25

    def base(self, attempt: int) -> float:
        """Delay before retry number `attempt` (1 = first retry), without jitter."""
        if attempt <= 1:
            return min(self.initial, self.cap)
        # cap the exponent so that huge attempt counts do not overflow
        exponent = min(attempt - 1, 200)
        return min(self.initial * self.factor**exponent, self.cap)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        base = self.base(attempt)
        if self.jitter <= 0:
            return base
        r = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1.0 + r))
