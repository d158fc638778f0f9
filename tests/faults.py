"""Tasks that inject real faults into the worker running them (test workers only)."""

from __future__ import annotations

import os
import signal
import threading
import time

import redis
from celery import current_app, shared_task


def _first_time(key: str) -> bool:
    client = redis.Redis.from_url(current_app.conf.broker_url)
    try:
        return int(client.incr(f"faults:{key}")) == 1
    finally:
        client.close()


@shared_task(name="tests.faults.return_then_die")
def return_then_die(key: str, delay: float) -> str:
    """Return, and have this pool process SIGKILLed `delay` seconds later (first run only).

    The kill races with what follows the return: storing the result, recording the
    job, acknowledging the message.
    """
    if _first_time(key):
        pid = os.getpid()
        threading.Timer(delay, os.kill, (pid, signal.SIGKILL)).start()
    return key


@shared_task(name="tests.faults.slow_noop")
def slow_noop(i: int, seconds: float = 0.01) -> int:
    time.sleep(seconds)
    return i
