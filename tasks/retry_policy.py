"""How long to wait before the next attempt: a pure function of the policy and the attempt.

Strategies (the `retry_backoff` task option):

- ``exponential`` (default): base, 2*base, 4*base, ...
- ``linear``: base, 2*base, 3*base, ...
- ``fixed``: base every time.
- ``none``: retry at once.

The delay is capped at `cap`, and with `jitter` (on by default) it is drawn uniformly
from [0, delay] ("full jitter", as in AWS's "Exponential Backoff And Jitter"): when a
dependency fails for many jobs at once, their retries spread out instead of arriving
together. Celery's own `retry_backoff=True` / `retry_backoff=<seconds>` mean exponential
with that base, and `retry_backoff_max` / `retry_jitter` keep Celery's names and
defaults, so existing task options keep their meaning.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


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


def from_task_options(
    retry_backoff: Any,
    retry_backoff_base: float | None = None,
    retry_backoff_max: float | None = None,
    retry_jitter: bool | None = None,
) -> RetryPolicy | None:
    """The policy a task's options describe, or None for Celery's fixed default delay.

    `retry_backoff` is a strategy name, or Celery's bool/number: True means exponential
    from 1 s, a number means exponential from that many seconds, False/0 means no
    backoff policy (Celery's `default_retry_delay` applies).
    """
    cap = DEFAULT_CAP if retry_backoff_max is None else float(retry_backoff_max)
    jitter = True if retry_jitter is None else bool(retry_jitter)  # Celery's default: on
    if isinstance(retry_backoff, str):
        try:
            strategy = Backoff(retry_backoff.lower())
        except ValueError:
            names = ", ".join(repr(b.value) for b in Backoff)
            raise ValueError(
                f"retry_backoff={retry_backoff!r} is not a backoff strategy; use one of "
                f"{names}, or True / a number of seconds as in Celery."
            ) from None
        base = DEFAULT_BASE if retry_backoff_base is None else float(retry_backoff_base)
        return RetryPolicy(strategy, base, cap, jitter)
    if retry_backoff is True:
        base = DEFAULT_BASE if retry_backoff_base is None else float(retry_backoff_base)
        return RetryPolicy(Backoff.EXPONENTIAL, base, cap, jitter)
    if not retry_backoff:
        return None
    if isinstance(retry_backoff, (int, float)):
        return RetryPolicy(Backoff.EXPONENTIAL, float(retry_backoff), cap, jitter)
    raise ValueError(
        f"retry_backoff={retry_backoff!r} is neither a strategy name nor a number of seconds."
    )
