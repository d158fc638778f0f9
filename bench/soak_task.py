"""The soak's task: sleeps, then counts that its body ran, in a Redis the soak never kills.

Workers load it with `-I bench.soak_task`; the producer imports it after `django.setup()`,
so it is a TrackedTask of the project's app like any user task. The count is a field of
one Redis hash per cell (SOAK_RUNS_KEY), keyed by the task id: HINCRBY survives the
faults the soak makes (the broker Redis is killed, this one is not), so "ran more than
once" is measured, not inferred from the job's row.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import shared_task

SIDE_REDIS_URL_ENV = "SOAK_SIDE_REDIS_URL"
RUNS_KEY_ENV = "SOAK_RUNS_KEY"
TASK_NAME = "bench.soak.record_run"

_client: redis.Redis | None = None


def _side() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ[SIDE_REDIS_URL_ENV])
    return _client


@shared_task(name=TASK_NAME, bind=True)
def record_run(self: Any, i: int, seconds: float) -> int:
    time.sleep(seconds)
    _side().hincrby(os.environ[RUNS_KEY_ENV], self.request.id, 1)
    return i
