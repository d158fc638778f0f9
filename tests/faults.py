"""Tasks that inject real faults into the worker running them (test workers only)."""

from __future__ import annotations

import os
import signal
import threading
import time

import redis
from celery import current_app, shared_task
from django.db import InterfaceError, OperationalError, connection


def side_redis_url() -> str:
    """The Redis where these tasks leave marks for the test to read, whatever the broker."""
    return os.environ.get("TESTS_SIDE_REDIS_URL") or current_app.conf.broker_url


def _first_time(key: str) -> bool:
    client = redis.Redis.from_url(side_redis_url())
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


@shared_task(name="tests.faults.poison_pill", max_retries=2, default_retry_delay=0.2)
def poison_pill() -> None:
    """Kills the pool process running it, every time (a segfaulting C extension, OOM)."""
    os.kill(os.getpid(), signal.SIGKILL)


@shared_task(name="tests.faults.report_pid_then_sleep", default_retry_delay=0.2)
def report_pid_then_sleep(key: str, seconds: float) -> int:
    """Publishes its pool process id (so a test can SIGKILL it mid-task), then sleeps.

    Only the first run sleeps; the re-run after the kill returns at once.
    """
    client = redis.Redis.from_url(side_redis_url())
    try:
        runs = int(client.incr(f"faults:runs:{key}"))
        client.set(f"faults:pid:{key}", os.getpid())
    finally:
        client.close()
    if runs == 1:
        time.sleep(seconds)
    return runs


@shared_task(
    name="tests.faults.soft_limited",
    soft_time_limit=0.5,
    max_retries=1,
    retry_backoff="fixed",
    retry_backoff_base=0.1,
)
def soft_limited(seconds: float) -> None:
    """Overruns its soft time limit: retried once, then dead-lettered."""
    time.sleep(seconds)


@shared_task(name="tests.faults.no_dead_letter", dead_letter=False)
def no_dead_letter() -> None:
    raise RuntimeError("fails without a dead letter")


# --- Cancellation (tests/tasks/test_cancellation.py) -----------------------------------


def _broker_redis() -> redis.Redis:
    return redis.Redis.from_url(side_redis_url())


@shared_task(name="tests.faults.mark_ran")
def mark_ran(key: str) -> str:
    """Leaves a mark in Redis: proof that the job ran."""
    client = _broker_redis()
    try:
        client.incr(f"faults:ran:{key}")
    finally:
        client.close()
    return key


@shared_task(name="tests.faults.cancellable_loop", bind=True)
def cancellable_loop(self, key: str, seconds: float, then: str = "return") -> dict:
    """Loops on `self.is_cancelled()` for up to `seconds`, counting its database queries.

    Marks in Redis when it started and when it saw the cancellation; then returns or
    raises (`then`), which must end the job REVOKED either way.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = _broker_redis()
    try:
        self.set_progress(1, "looping")  # flushes STARTED: the row says it is running
        client.incr(f"faults:runs:{key}")
        client.set(f"faults:loop-started:{key}", time.time())
        calls = 0
        deadline = time.monotonic() + seconds
        with CaptureQueriesContext(connection) as queries:
            while time.monotonic() < deadline:
                calls += 1
                if self.is_cancelled():
                    client.set(f"faults:cancel-seen:{key}", time.time())
                    if then == "raise":
                        raise RuntimeError("stopping because the job was cancelled")
                    return {"cancelled": True}
                time.sleep(0.001)
        return {"calls": calls, "queries": len(queries)}
    finally:
        client.close()


@shared_task(name="tests.faults.sleep_ignoring_cancel")
def sleep_ignoring_cancel(key: str, seconds: float) -> str:
    """Publishes its pool process id, sleeps without ever checking for cancellation."""
    client = _broker_redis()
    try:
        client.set(f"faults:cancel-pid:{key}", os.getpid())
        time.sleep(seconds)
        client.incr(f"faults:ran:{key}")
    finally:
        client.close()
    return key


# --- Publishing path (tests/tasks/test_outbox.py, test_uniqueness.py, test_backpressure.py)


def _count_in_database(key: str) -> int:
    """Count one execution in the test database (survives broker restarts)."""
    from django.db.models import F

    from demo.models import DemoCounter

    DemoCounter.objects.get_or_create(key=key)
    DemoCounter.objects.filter(key=key).update(count=F("count") + 1)
    return DemoCounter.objects.get(key=key).count


@shared_task(name="tests.faults.count_run")
def count_run(key: str) -> int:
    """Counts each execution under `key`; returns the count so far."""
    return _count_in_database(key)


@shared_task(name="tests.faults.routed_high", queue="high")
def routed_high(i: int) -> int:
    return i


@shared_task(name="tests.faults.unique_count", unique_key=("key",), unique_ttl=60)
def unique_count(key: str, seconds: float = 0.0, note: str = "") -> int:
    """At most one unfinished job per `key`; sleeps, then counts its execution."""
    time.sleep(seconds)
    return _count_in_database(f"unique:{key}")


@shared_task(name="tests.faults.unique_short_ttl", unique_key=("key",), unique_ttl=1)
def unique_short_ttl(key: str) -> str:
    return key


@shared_task(
    name="tests.faults.unique_by_callable",
    unique_key=lambda args, kwargs: f"account-{kwargs.get('account', args[0] if args else '')}",
)
def unique_by_callable(account: int, page: int = 1) -> int:
    return page


@shared_task(bind=True, name="tests.faults.retry_after_sleep", max_retries=3)
def retry_after_sleep(self, key: str, seconds: float, countdown: float) -> int:
    """First attempt: sleep `seconds`, then retry after `countdown`; later ones count."""
    if self.request.retries == 0:
        time.sleep(seconds)
        raise self.retry(countdown=countdown)
    return _count_in_database(key)


# --- Database connection broken mid-task (tests/tasks/test_faults.py) -------------------


@shared_task(
    name="tests.faults.query_sleep_query",
    autoretry_for=(OperationalError, InterfaceError),
    max_retries=2,
    retry_backoff="fixed",
    retry_backoff_base=0.2,
)
def query_sleep_query(key: str, seconds: float) -> int:
    """Uses the database, reports its database backend pid, sleeps, uses it again.

    A test terminates that backend while it sleeps: the second query fails, Celery's
    autoretry runs the task again on a fresh connection.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend_pid = cursor.fetchone()[0]
    client = redis.Redis.from_url(side_redis_url())
    try:
        runs = int(client.incr(f"faults:runs:{key}"))
        client.set(f"faults:backend:{key}", backend_pid)
    finally:
        client.close()
    if runs == 1:
        time.sleep(seconds)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return runs


@shared_task(name="tests.faults.hard_limited", time_limit=1, max_retries=0)
def hard_limited(seconds: float) -> None:
    """Overruns its hard time limit: the pool process is killed, the job dead-lettered."""
    time.sleep(seconds)
