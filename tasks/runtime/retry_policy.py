"""A task's retry options, turned into the policy that decides its retries' delays.

Strategies (the `retry_backoff` task option):

- ``exponential`` (default): base, 2*base, 4*base, ...
- ``linear``: base, 2*base, 3*base, ...
- ``fixed``: base every time.
- ``none``: retry at once.

The delay is capped, and with jitter (on by default) drawn from [0, delay]: the one
backoff function is tasks.backoff.RetryPolicy. Celery's own `retry_backoff=True` /
`retry_backoff=<seconds>` mean exponential with that base, and `retry_backoff_max` /
`retry_jitter` keep Celery's names and defaults, so existing task options keep their
meaning.
"""

from __future__ import annotations

from typing import Any

from tasks.backoff import DEFAULT_BASE, DEFAULT_CAP, Backoff, RetryPolicy

__all__ = ["Backoff", "RetryPolicy", "from_task_options"]


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
