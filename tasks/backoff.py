"""How long to wait before the next attempt: one pure function for every retry loop.

A task's retries (tasks.runtime.retry_policy turns its options into a policy), the
outbox's failed publishes (tasks.publish.outbox), the relay after a broker or database
failure (tasks.publish.relay) and the recorder after a failed write
(tasks.record.recorder) all ask `RetryPolicy.delay` / `ceiling`.

Strategies:

- ``exponential`` (default): base, 2*base, 4*base, ...
- ``linear``: base, 2*base, 3*base, ...
- ``fixed``: base every time.
- ``none``: retry at once.

The delay is capped at `cap`, and with `jitter` it is drawn uniformly from [0, delay]
("full jitter", as in AWS's "Exponential Backoff And Jitter"): when a dependency fails
for many jobs at once, their retries spread out instead of arriving together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class Backoff(StrEnum):
    EXPONENTIAL = "exponential"
    LINEAR = "linear"
    FIXED = "fixed"
    NONE = "none"


DEFAULT_BASE = 1.0  # seconds
DEFAULT_CAP = 600.0  # seconds, Celery's retry_backoff_max default
# 2**60 seconds is far beyond any cap; bounding the exponent keeps the arithmetic finite.
_MAX_EXPONENT = 60


@dataclass(frozen=True)
class RetryPolicy:
    strategy: Backoff = Backoff.EXPONENTIAL
    base: float = DEFAULT_BASE
    cap: float = DEFAULT_CAP
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError("retry delays cannot be negative")

    def ceiling(self, retries: int) -> float:
        """The delay before retry number `retries + 1`, before jitter (never above cap)."""
        retries = max(0, retries)
        if self.strategy is Backoff.NONE:
            return 0.0
        if self.strategy is Backoff.FIXED:
            delay = self.base
        elif self.strategy is Backoff.LINEAR:
            delay = self.base * (retries + 1)
        else:
            delay = self.base * 2 ** min(retries, _MAX_EXPONENT)
        return min(delay, self.cap)

    def delay(self, retries: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after `retries` earlier retries (0 for the first retry)."""
        ceiling = self.ceiling(retries)
        if not self.jitter or ceiling == 0:
            return ceiling
        return (rng or random).uniform(0, ceiling)
