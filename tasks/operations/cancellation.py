"""Cancelling jobs, the operator's side: `cancel(id)` and `cancel_many(ids)`.

The request is recorded on the row (`Job.cancel_requested_at`), a message still held
in the database is withdrawn (the job is REVOKED at once), and every worker is told
through Celery's `revoke` broadcast. How workers and running tasks honour it, even
after a restart, is tasks.runtime.cancellation.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.db import transaction
from django.utils import timezone

from tasks import lifecycle
from tasks.models import Job, JobStatus, OutboxMessage
from tasks.record import translate
from tasks.record.service import record_now
from tasks.runtime.cancellation import REVOKED_REASON, hard_signal, refresh_seconds

logger = logging.getLogger(__name__)

#: Seconds a hard cancel waits for workers to report what they killed.
TERMINATE_REPLY_TIMEOUT = 1.0


class Outcome(enum.StrEnum):
    """What `cancel()` did, in an operator's words."""

    NOT_STARTED = "cancelled before it ran"
    """Queued, delayed or never published: it ends REVOKED without running."""
    RUNNING = "cancel requested while running"
    """It stops at its next `is_cancelled()` check; a task that never checks finishes."""
    TERMINATED = "hard-cancelled"
    """Its pool process was killed; the job is REVOKED."""
    FINISHED = "already finished"
    """SUCCESS, FAILURE or REVOKED before the request: nothing was done."""
    UNKNOWN = "unknown job"
    """No job with this id is recorded: nothing was done."""


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """The answer to one cancellation request."""

    task_id: str
    outcome: Outcome
    #: The job's status when the request was made ("" for an unknown id).
    status: str
    #: One sentence for the operator: what happened and what happens next.
    message: str
    #: The job had been cancelled before (the request changed nothing new).
    repeated: bool = False

    @property
    def done_nothing(self) -> bool:
        return self.outcome in (Outcome.FINISHED, Outcome.UNKNOWN)

    def __str__(self) -> str:
        return f"{self.task_id}: {self.outcome}. {self.message}"


# --- The service ----------------------------------------------------------------------


def cancel(
    task_id: str, *, terminate: bool = False, requested_by: str | None = None
) -> CancelOutcome:
    """Cancel one job. See `cancel_many`."""
    return cancel_many([task_id], terminate=terminate, requested_by=requested_by)[0]


def cancel_many(
    task_ids: Iterable[str], *, terminate: bool = False, requested_by: str | None = None
) -> list[CancelOutcome]:
    """Cancel jobs: durably in the database, then in every worker's memory.

    `terminate=True` also kills the pool process of a job that is running (a hard
    cancel: the task gets no chance to clean up). A finished or unknown job is left
    alone. Safe to repeat. The broadcast is sent after this function's own
    transaction, even inside an outer one: a worker told early is harmless.
    """
    ids = list(dict.fromkeys(task_ids))
    if not ids:
        return []
    with transaction.atomic():
        jobs = {
            job.task_id: job
            for job in Job.objects.filter(task_id__in=ids).only(
                "task_id", "status", "attempts", "cancel_requested_at"
            )
        }
        live = [task_id for task_id, job in jobs.items() if job.status not in lifecycle.TERMINAL]
        # Conditional, so a job that finished meanwhile or was cancelled before keeps
        # its row as it is; the first request's time is the one that counts.
        Job.objects.filter(task_id__in=live, cancel_requested_at__isnull=True).exclude(
            status__in=lifecycle.TERMINAL
        ).request_cancel(timezone.now())
        withdrawn = _withdraw_unpublished(live, jobs)
    terminated = _broadcast(live, terminate)
    outcomes = [
        _describe(task_id, jobs.get(task_id), task_id in withdrawn, task_id in terminated)
        for task_id in ids
    ]
    for outcome in outcomes:
        logger.info("Cancel requested by %s (hard=%s): %s", requested_by, terminate, outcome)
    return outcomes


def _withdraw_unpublished(task_ids: Sequence[str], jobs: dict[str, Job]) -> set[str]:
    """Delete outbox messages no publisher has claimed; their jobs are REVOKED now.

    A claimed message may be on its way to the broker: it is left to the publisher,
    and workers discard it on delivery (it is revoked like any queued job). Rows a
    publisher is locking right now are skipped, not waited for.
    """
    if not task_ids:
        return set()
    held = set(
        OutboxMessage.objects.select_for_update(skip_locked=True)
        .filter(task_id__in=task_ids, claimed_at__isnull=True)
        .values_list("task_id", flat=True)
    )
    OutboxMessage.objects.filter(task_id__in=held).delete()
    # Rows waiting for the relay (tasks.publish.relay) and not claimed by one: due, not leased.
    relayed = set(
        Job.objects.select_for_update(skip_locked=True)
        .filter(task_id__in=task_ids, publish_due_at__lte=timezone.now())
        .values_list("task_id", flat=True)
    )
    Job.objects.filter(task_id__in=relayed).withdrawn_from_relay()
    withdrawn = held | relayed
    for task_id in withdrawn:
        record_now(translate.cancelled_before_publish(task_id, jobs[task_id].attempts))
        # What Celery's revoke would have stored had the message reached a worker.
        current_app.backend.mark_as_revoked(task_id, REVOKED_REASON)
    return withdrawn


def _broadcast(task_ids: Sequence[str], terminate: bool) -> set[str]:
    """Tell every worker; returns the ids a worker reports having killed.

    A broker outage loses only the broadcast: workers read the database within
    `TASKS_CANCEL_REFRESH_SECONDS`, and running jobs check it themselves.
    """
    if not task_ids:
        return set()
    control = current_app.control
    try:
        if not terminate:
            control.revoke(list(task_ids))
            return set()
        replies = control.revoke(
            list(task_ids),
            terminate=True,
            signal=hard_signal(),
            reply=True,
            timeout=TERMINATE_REPLY_TIMEOUT,
        )
    except Exception:
        logger.exception(
            "Could not broadcast the cancellation of %s; workers will read it from the "
            "database within %s s",
            ", ".join(task_ids),
            refresh_seconds(),
        )
        return set()
    return terminated_ids(replies or [])


def terminated_ids(replies: Iterable[dict[str, Any]]) -> set[str]:
    """The ids in workers' replies to `revoke(terminate=True)`: "terminate: id1, id2"."""
    killed: set[str] = set()
    for reply in replies:
        for answer in reply.values():
            text = (answer or {}).get("ok", "") if isinstance(answer, dict) else ""
            if text.startswith("terminate: ") and text != "terminate: tasks unknown":
                killed.update(part.strip() for part in text[len("terminate: ") :].split(","))
    return killed


def _describe(task_id: str, job: Job | None, withdrawn: bool, terminated: bool) -> CancelOutcome:
    if job is None:
        return CancelOutcome(
            task_id, Outcome.UNKNOWN, "", "No job with this id is recorded; nothing was done."
        )
    status = job.status
    repeated = job.cancel_requested_at is not None
    if status in lifecycle.TERMINAL:
        return CancelOutcome(
            task_id,
            Outcome.FINISHED,
            status,
            f"The job had already finished ({status}); nothing was done.",
        )
    if withdrawn:
        message = "It had not been published yet: its message was withdrawn and it is REVOKED."
        return CancelOutcome(task_id, Outcome.NOT_STARTED, status, message, repeated)
    if terminated:
        message = (
            f"Its worker process was killed ({hard_signal()}) and the job is REVOKED; "
            "the worker starts a new process."
        )
        return CancelOutcome(task_id, Outcome.TERMINATED, status, message, repeated)
    if status == JobStatus.STARTED:
        message = (
            "It is running: it stops at its next self.is_cancelled() check and ends "
            "REVOKED. A task that never checks runs to the end; a hard cancel kills it."
        )
        return CancelOutcome(task_id, Outcome.RUNNING, status, message, repeated)
    if status == JobStatus.RECEIVED:
        # A running job's row says RECEIVED until its first progress report or its end
        # (a pool child's events travel together): "held" includes "just started".
        message = (
            "A worker holds it (waiting for its countdown or a free process): it is "
            "discarded as REVOKED without running. If it has just started, it stops at "
            "its next self.is_cancelled() check."
        )
        return CancelOutcome(task_id, Outcome.NOT_STARTED, status, message, repeated)
    message = (
        "It is queued: workers discard it as REVOKED when it is delivered, also after a "
        "restart, and it never runs."
    )
    return CancelOutcome(task_id, Outcome.NOT_STARTED, status, message, repeated)
