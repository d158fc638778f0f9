"""Demo tasks for the README walk-through, the benchmarks and the tests.

Plain `@shared_task` functions: they rely on Celery's options plus the layer's
(`retry_backoff` strategies, `retry_backoff_base`), nothing else.
"""

from __future__ import annotations

import time
from typing import Any

from celery import shared_task
from django.db import transaction
from django.db.models import F

from demo.models import DemoCounter


class DemoTransientError(Exception):
    """A failure worth retrying (the demo's stand-in for a flaky network call)."""


@shared_task(name="tasks.demo.noop")
def noop(i: int) -> int:
    return i


@shared_task(name="tasks.demo.add")
def add(x: float, y: float) -> float:
    return x + y


@shared_task(name="tasks.demo.sleep_with_progress", bind=True)
def sleep_with_progress(self: Any, seconds: float = 5, steps: int = 10) -> dict[str, Any]:
    """Sleeps in steps, reporting progress; stops at the first step after a cancel."""
    steps = max(1, int(steps))
    for step in range(1, steps + 1):
        if self.is_cancelled():
            # The job ends REVOKED whatever is returned here (TrackedTask.__call__).
            return {"slept": seconds * (step - 1) / steps, "steps": step - 1}
        time.sleep(seconds / steps)
        self.set_progress(100 * step / steps, f"step {step} of {steps}")
    return {"slept": seconds, "steps": steps}


@shared_task(
    name="tasks.demo.flaky",
    bind=True,
    autoretry_for=(DemoTransientError,),
    max_retries=3,
    retry_backoff="exponential",
    retry_backoff_base=0.5,
    retry_backoff_max=30,
    retry_jitter=True,
)
def flaky(self: Any, key: str, fail_times: int) -> str:
    with transaction.atomic():
        counter, _ = DemoCounter.objects.get_or_create(key=key)
        DemoCounter.objects.filter(pk=counter.pk).update(count=F("count") + 1)
        counter.refresh_from_db()
    if counter.count <= fail_times:
        raise DemoTransientError(f"attempt {counter.count} for {key!r} fails on purpose")
    return f"{key} succeeded on attempt {counter.count}"


@shared_task(
    name="tasks.demo.always_fail",
    autoretry_for=(DemoTransientError,),
    max_retries=3,
    retry_backoff="exponential",
    retry_backoff_base=0.5,
    retry_backoff_max=10,
    retry_jitter=True,
)
def always_fail(message: str = "always fails") -> None:
    raise DemoTransientError(message)


@shared_task(name="tasks.demo.send_receipt")
def send_receipt(order_id: int, email: str, api_token: str = "") -> dict[str, Any]:
    """Personal data in keyword arguments: the dashboard masks `email` and `api_token`
    (TASKS_REDACT_KEYS) while the row keeps them for a replay."""
    return {"order_id": order_id, "delivered": bool(email and api_token)}
