"""Plain Celery, nothing of this project: the baseline the layer is measured against.

Its own app with no result backend, JSON, and otherwise Celery's defaults (prefetch
multiplier 4, early acknowledgement): the `celery-prefork` row of perf-baseline.md. The
task counts itself in Redis because without a result backend that counter is the only
way the bench can tell that all N tasks have run.

The broker URL comes from `BENCH_BROKER_URL`, which `bench.run` always sets to its
private Redis. Without it Celery falls back to its own default (AMQP on localhost), so a
stray import can never publish to the machine's shared Redis.
"""

from __future__ import annotations

import os

import redis
from celery import Celery

from bench.bare_names import BROKER_URL_ENV, COUNTER_KEY, QUEUE

app = Celery("bare", broker=os.environ.get(BROKER_URL_ENV) or None)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    task_default_queue=QUEUE,
    # Celery's behaviour anyway; setting it only silences the start-up deprecation warning.
    broker_connection_retry_on_startup=True,
)

_client: redis.Redis | None = None
_client_pid = 0


def counter_client() -> redis.Redis:
    """A Redis client of this process's own.

    Pool children are forked from the worker's main process: a client (and its sockets)
    inherited across fork would be shared by two processes, so each pid makes its own.
    """
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        _client = redis.Redis.from_url(os.environ[BROKER_URL_ENV])
        _client_pid = os.getpid()
    return _client


@app.task(name="bench.noop")
def noop(i: int) -> int:
    """The bare twin of `tasks.demo.noop`, plus the INCR the bench waits for."""
    counter_client().incr(COUNTER_KEY)
    return i
