"""Cancellation inside a worker: the revoked ids it loads, and a running task's check.

The operator's side, `cancel()`, is tasks.operations.cancellation. The whole mechanism:

Celery keeps revocations only in each worker's memory (`celery.worker.state.revoked`, a
LimitedSet of 50,000 ids for 3 h): a job revoked while no worker listens, or before
every worker restarts, runs after all. Here a cancellation lives in three places:

1. The database is the truth: `cancel()` sets `Job.cancel_requested_at`, and a message
   still held in the outbox (`OutboxMessage`, or a row waiting for the relay, not
   claimed by a publisher) is withdrawn, so it is never published, and the job is
   REVOKED at once.
2. Workers' memory, for messages on the broker: `cancel()` broadcasts Celery's `revoke`,
   and every worker loads the unfinished cancellations from the database when its
   consumer starts and every `TASKS_CANCEL_REFRESH_SECONDS` (`RevocationSync`). Celery
   then discards the message when it is delivered, as REVOKED. A delayed job a worker
   already holds (countdown, ETA, retry backoff) is discarded within a second instead
   of at its ETA.
3. The running task: `is_cancelled()` reads the row at most every `CHECK_INTERVAL`;
   once it was true, `TrackedTask.__call__` ends the job REVOKED (`stop_as_revoked`)
   however the body ends. A hard cancel (`terminate=True`) kills the pool process with
   `TASKS_CANCEL_HARD_SIGNAL` through Celery's `revoke(terminate=True)`, which records
   REVOKED through the `task_revoked` signal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from celery import bootsteps
from celery.exceptions import Ignore
from celery.worker import state
from django.db import DatabaseError, connection

from tasks.conf import layer_settings
from tasks.models import Job
from tasks.record import translate
from tasks.record.sinks import record
from tasks.runtime.latest_reading import LatestReading

logger = logging.getLogger(__name__)

#: Seconds between two database checks of one running job in `is_cancelled()`.
CHECK_INTERVAL = 0.5
#: Seconds between two passes of a worker over the delayed jobs it holds.
SWEEP_INTERVAL = 1.0
#: At most this many ids are loaded into a worker (Celery's own revoked-set limit).
MAX_LOADED = 50_000

REVOKED_REASON = "cancelled by an operator"


def hard_signal() -> str:
    return layer_settings().cancel_hard_signal


def refresh_seconds() -> float:
    return layer_settings().cancel_refresh_seconds


# --- Inside a running task ------------------------------------------------------------


def is_cancelled(task: Any) -> bool:
    """True once an operator asked to cancel the job this task is running.

    Cheap in a tight loop: at most one indexed query (the unique task id) per
    `CHECK_INTERVAL` per running job, remembered on the request; once true it stays
    true without another query. False outside a worker (a direct call has no job).
    """
    request = task.request
    if request.id is None or getattr(request, "called_directly", True):
        return False
    seen = request.__dict__
    if seen.get("_cancel_observed"):
        return True
    now = time.monotonic()
    last = seen.get("_cancel_checked_at")
    if last is not None and now - last < CHECK_INTERVAL:
        return False
    request._cancel_checked_at = now
    try:
        cancelled = Job.objects.filter(
            task_id=request.id, cancel_requested_at__isnull=False
        ).exists()
    except DatabaseError:
        # Failing the job because the check could not be made would be worse than
        # checking again in CHECK_INTERVAL.
        logger.warning("Could not check whether job %s was cancelled", request.id, exc_info=True)
        return False
    if cancelled:
        request._cancel_observed = True
    return cancelled


def observed(task: Any) -> bool:
    """Whether the running task has seen `is_cancelled()` return True (no I/O)."""
    return bool(task.request.__dict__.get("_cancel_observed"))


def stop_as_revoked(task: Any) -> NoReturn:
    """End a job that observed its cancellation as REVOKED, not SUCCESS or FAILURE.

    The REVOKED event joins the child's buffered events (flushed in task_postrun, before
    the message is acknowledged); the result backend stores REVOKED as Celery's revoke
    would. `Ignore` then tells Celery's tracer to store nothing more and the worker to
    acknowledge the message (celery/worker/request.py, `on_failure`).
    """
    request = task.request
    record(translate.cancelled_while_running(request))
    try:
        task.backend.mark_as_revoked(request.id, REVOKED_REASON, request=request)
    except Exception:
        logger.exception("Could not store REVOKED for job %s in the result backend", request.id)
    raise Ignore(f"Job {request.id} was cancelled while running")


# --- In the worker's main process -----------------------------------------------------


def pending_ids(limit: int = MAX_LOADED) -> list[str]:
    """Ids of cancelled jobs that have not finished, oldest request first.

    Served by the partial index on `cancel_requested_at`.
    """
    newest = list(
        Job.objects.cancel_requested()
        .order_by("-cancel_requested_at")
        .values_list("task_id", flat=True)[:limit]
    )
    newest.reverse()
    return newest


def revoke_locally(task_ids: Sequence[str]) -> None:
    """Put ids into this worker's revoked set, as a `revoke` broadcast would.

    Re-adding an id refreshes its time stamp, so a long-delayed cancelled job is not
    forgotten when the set expires old entries.
    """
    if task_ids:
        state.revoked.update(task_ids)


def discard_revoked_scheduled(consumer: Any) -> int:
    """Discard the delayed jobs this worker holds whose ids are revoked; returns how many.

    Celery itself checks only when the ETA comes (hours away, perhaps). This does now
    what its timer would do then: `Request.revoked()` acknowledges the message, stores
    REVOKED and sends `task_revoked`; the prefetch slot the ETA held is given back.
    """
    discarded = 0
    # celery-types' stub of celery.worker.state leaves scheduled_requests out.
    for request in list(state.scheduled_requests):  # type: ignore[attr-defined]
        entry = getattr(request, "_eta_timer_entry", None)
        if request.id not in state.revoked or entry is None or entry.canceled:
            continue
        entry.cancel()
        if request.revoked():
            consumer.qos.decrement_eventually()
            discarded += 1
    return discarded


class RevocationSync(bootsteps.StartStopStep):
    """Consumer step: the worker's revoked set follows the database.

    `start` runs before the consumer's event loop handles any message (and again
    after a broker reconnection), so a job cancelled while this worker was down is
    discarded when delivered.
    """

    label = "Cancelled jobs"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._refresher: LatestReading[list[str]] | None = None
        self._tref: Any = None

    def start(self, c: Any) -> None:
        try:
            ids = pending_ids()
            revoke_locally(ids)
            logger.info("Loaded %d cancelled job(s) into the revoked set", len(ids))
        except Exception:
            logger.exception("Could not load cancelled jobs at start; retrying in the background")
        finally:
            # Pool processes forked later must not share this connection.
            connection.close()
        self._refresher = LatestReading(
            "tasks-cancellations", refresh_seconds(), pending_ids, "cancelled jobs"
        )
        self._refresher.start()
        self._tref = c.timer.call_repeatedly(SWEEP_INTERVAL, self._tick, (c,), priority=10)

    def _tick(self, c: Any) -> None:
        try:
            ids = self._refresher.take() if self._refresher else None
            if ids:
                revoke_locally(ids)
            discard_revoked_scheduled(c)
        except Exception:
            logger.exception("Applying cancellations failed; will retry")

    def stop(self, c: Any) -> None:
        if self._tref is not None:
            self._tref.cancel()
            self._tref = None
        if self._refresher is not None:
            self._refresher.stop()
            self._refresher = None

    shutdown = stop


def connect(app: Any) -> None:
    """Wire worker-side hooks (called from TasksConfig.ready)."""
    app.steps["consumer"].add(RevocationSync)
