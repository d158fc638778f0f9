"""/readyz: can this deployment take and run jobs now?

Five checks, each a `Check(name, ok, detail)`:

- `database`: a `SELECT 1`;
- `broker`: a fresh connection to the broker and a ping, with a short timeout;
- `workers`: at least one live worker (a recent heartbeat, no clean shutdown) consumes
  each required queue (TASKS_READY_QUEUES; by default the app's default queue);
- `backlog`: no queue holds more than TASKS_READY_MAX_BACKLOG messages;
- `drain`: no queue needs more than TASKS_READY_MAX_DRAIN_SECONDS to drain at its
  recent rate (a queue that holds messages and is not draining at all fails too).

The dead-letter queue is left out of the last two: letters wait there on purpose.

The checks that do I/O run at once on a small thread pool and the probe waits at most
TASKS_READY_CHECK_TIMEOUT (plus a little) for them: a database or broker that does not
answer fails its check instead of hanging the probe. The verdicts on what was read are
pure functions, tested without I/O.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from celery import current_app
from django.db import connection, connections

from dashboard.probes.metrics import is_dead_letter_queue, queue_states_or_none
from tasks import operations
from tasks.conf import layer_settings

logger = logging.getLogger(__name__)

#: Seconds the probe waits beyond the checks' own timeout before giving up on one.
MARGIN = 0.5


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- verdicts (pure) ------------------------------------------------------------------


def required_queues(configured: Sequence[str], default_queue: str) -> tuple[str, ...]:
    return tuple(configured) or (default_queue,)


def workers_check(required: Iterable[str], consumed: Iterable[Collection[str]]) -> Check:
    """`consumed`: the queues of each live worker."""
    served = {queue for queues in consumed for queue in queues}
    missing = [queue for queue in required if queue not in served]
    if missing:
        return Check("workers", False, "no live worker consumes " + ", ".join(missing))
    return Check("workers", True, "live workers consume " + ", ".join(required))


def _watched(states: Iterable[Any]) -> list[Any]:
    return [state for state in states if not is_dead_letter_queue(state)]


def backlog_check(states: Iterable[Any] | None, max_backlog: int) -> Check:
    if states is None:
        return Check("backlog", True, "queue depths not measured")
    over, unknown = [], []
    for state in _watched(states):
        if state.depth is None:
            unknown.append(state.name)
        elif max_backlog and state.depth > max_backlog:
            over.append(f"{state.name} holds {state.depth}")
    if over:
        return Check("backlog", False, f"over {max_backlog}: " + ", ".join(over))
    if unknown:
        # The broker check says why; a backlog that cannot be read is not over the limit.
        return Check("backlog", True, "depth unknown (broker): " + ", ".join(unknown))
    return Check("backlog", True, f"each at most {max_backlog}" if max_backlog else "no limit")


def drain_check(states: Iterable[Any] | None, max_seconds: float) -> Check:
    if states is None:
        return Check("drain", True, "queue rates not measured")
    slow = []
    for state in _watched(states):
        if not max_seconds or not state.depth:
            continue
        if state.drain_seconds is None:
            if not state.paused:
                slow.append(f"{state.name} is not draining ({state.depth} waiting)")
        elif state.drain_seconds > max_seconds:
            slow.append(f"{state.name} drains in {state.drain_seconds:.0f} s")
    if slow:
        return Check("drain", False, f"over {max_seconds:g} s: " + ", ".join(slow))
    return Check("drain", True, f"each under {max_seconds:g} s" if max_seconds else "no limit")


def overall(checks: Sequence[Check]) -> tuple[bool, list[str]]:
    failed = [check.name for check in checks if not check.ok]
    return not failed, failed


# --- what the checks read (I/O) -----------------------------------------------------------


def ping_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def ping_broker(app: Any, timeout: float) -> None:
    """Connect to the broker afresh (not through the publishing pool, whose connection
    may be stale) and ping it; every step bounded by `timeout`."""
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    with app.connection_for_read(connect_timeout=timeout, transport_options=options) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        client = getattr(conn.default_channel, "client", None)
        if client is not None and hasattr(client, "ping"):
            client.ping()  # Redis; for AMQP the connection handshake was the ping


def live_worker_queues() -> list[list[str]]:
    return [list(beat.queues or ()) for beat in operations.workers_online()]


_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="readyz")
        return _pool


def _closing(read: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        try:
            return read()
        finally:
            # The pool's threads are long-lived: leave no connection open in them.
            connections.close_all()

    return run


def checks(queue_states: Callable[[], list[Any] | None] = queue_states_or_none) -> list[Check]:
    """Every check, none waited for longer than the configured timeout."""
    settings = layer_settings()
    timeout = settings.ready_check_timeout
    # Resolved here: Celery's current app is per thread, and the checks run on others.
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    reads: dict[str, Callable[[], Any]] = {
        "database": ping_database,
        "broker": lambda: ping_broker(app, timeout),
        "workers": live_worker_queues,
        "queues": queue_states,
    }
    pool = _executor()
    futures = {name: pool.submit(_closing(read)) for name, read in reads.items()}
    concurrent.futures.wait(futures.values(), timeout=timeout + MARGIN)
    answers: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name, future in futures.items():
        if not future.done():
            future.cancel()
            problems[name] = f"no answer within {timeout:g} s"
            continue
        error = future.exception()
        if error is not None:
            logger.warning("/readyz: %s failed: %r", name, error)
            problems[name] = f"{type(error).__name__}: {error}"[:300]
        else:
            answers[name] = future.result()
    found = [
        Check(name, name not in problems, problems.get(name, answered))
        for name, answered in (("database", "SELECT 1 answered"), ("broker", "ping answered"))
    ]
    required = required_queues(settings.ready_queues, app.conf.task_default_queue)
    if "workers" in problems:
        found.append(Check("workers", False, problems["workers"]))
    else:
        found.append(workers_check(required, answers["workers"]))
    if "queues" in problems:
        found.append(Check("backlog", False, "queue states: " + problems["queues"]))
        found.append(Check("drain", False, "queue states: " + problems["queues"]))
    else:
        states = answers["queues"]
        found.append(backlog_check(states, settings.ready_max_backlog))
        found.append(drain_check(states, settings.ready_max_drain_seconds))
    return found
