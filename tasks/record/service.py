"""The recording service: the one place that decides how job state is written.

Signal receivers, the publish path and the result backend describe what happened as
events (tasks.record.events) and hand them to `record` / `record_result` (in
tasks.record.sinks). Where an event goes first depends on the process: a worker puts it on a Redis
stream, durable before the task's message is acknowledged, and a recorder process writes
it; a web process buffers it for a moment; `.delay()` inside a transaction writes its
PENDING row at once, in that transaction. Every path ends in `write`, which applies a
batch of events in one transaction with a few bulk upserts.

An event has two kinds of fields:
- facts describe the message (name, args, queue, parents, ...). They never change for a
  task id, so they fill whatever is still empty and never overwrite.
- state belongs to the status (timestamps, worker, result, error). It is written only
  when the event wins `tasks.lifecycle.supersedes`, so a late STARTED never overwrites
  SUCCESS. Applying the same events twice changes nothing, which is what makes
  redelivery from the stream safe.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_celery_results.models import TaskResult

from tasks import lifecycle
from tasks.models import Job, JobAttempt, JobStatus
from tasks.record import batches
from tasks.record.events import CHORD_CALLBACK, JobEvent, ResultEvent
from tasks.record.tallies import Finishing
from tasks.record.upsert import Merge, UpsertPlan

logger = logging.getLogger(__name__)

FACTS = frozenset(
    {
        "name",
        "args",
        "kwargs",
        "queue",
        "priority",
        "parent_id",
        "root_id",
        "group_id",
        "group_index",
        "correlation_id",
        "sent_at",
    }
)
STATES = frozenset(
    {
        "eta",
        "worker",
        "started_at",
        "finished_at",
        "result",
        "error",
        "traceback",
        "progress",
        "progress_message",
        "dead_lettered_at",
        "message",
        "fingerprint",
    }
)
#: A ResultEvent field: the task's return value as it is, for `result_row` to encode
#: (tasks.record.results sends plain JSON results so, not encoded in the pool child).
RAW_RESULT = "raw_result"

JOB_PLAN = UpsertPlan(
    model=Job,
    key="task_id",
    merges={
        **dict.fromkeys(FACTS, Merge.FILL),
        **dict.fromkeys(STATES | {"status", "attempts"}, Merge.WINNER),
        "created_at": Merge.EARLIEST,
        "updated_at": Merge.ALWAYS,
    },
    wins=lifecycle.sql_wins(),
    insert_defaults={
        f.name: f.get_default()
        for f in Job._meta.concrete_fields
        if not f.null and f.name not in {"id", "task_id"}
    },
)
# django-celery-results' own row, as its DatabaseBackend would write it; a finished
# result is final.
RESULT_PLAN = UpsertPlan(
    model=TaskResult,
    key="task_id",
    merges={"date_created": Merge.INSERT_ONLY, "date_started": Merge.FILL},
    wins="{old}.status NOT IN ('SUCCESS', 'FAILURE', 'REVOKED')",
    insert_defaults={"content_type": "application/json", "content_encoding": "utf-8"},
)

# One row per attempt that started. An attempt's outcome (RETRY, SUCCESS, ...) replaces
# STARTED, never the other way round; the outcome is final.
ATTEMPT_PLAN = UpsertPlan(
    model=JobAttempt,
    key="key",
    merges={
        "task_id": Merge.INSERT_ONLY,
        "number": Merge.INSERT_ONLY,
        "worker": Merge.FILL,
        "started_at": Merge.EARLIEST,
        "status": Merge.WINNER,
        "finished_at": Merge.WINNER,
        "error": Merge.WINNER,
        "next_attempt_at": Merge.WINNER,
    },
    wins=("({old}.status = 'STARTED' OR ({old}.status = 'RETRY' AND {new}.status = 'RETRY'))"),
    insert_defaults={"worker": "", "error": ""},
)
_ATTEMPT_OUTCOMES = frozenset(
    {JobStatus.RETRY, JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.REVOKED}
)


def record_now(event: JobEvent) -> None:
    """Write an event at once, in the caller's transaction if there is one."""
    write([event], [])


def write(job_events: Iterable[JobEvent], result_events: Iterable[ResultEvent]) -> None:
    """Apply a batch of events: one transaction, one upsert per column set."""
    job_events = list(job_events)
    attempts = attempt_rows(job_events)
    jobs = merge_job_events(job_events)
    results = merge_result_events(result_events)
    if not jobs and not results:
        return
    now = timezone.now()
    with transaction.atomic():
        if jobs:
            finishing, jobs = Finishing.read(jobs)
            JOB_PLAN.execute(job_row(event, now) for event in jobs)
            finishing.add()
        if attempts:
            ATTEMPT_PLAN.execute(attempts)
        if results:
            RESULT_PLAN.execute(_result_row(event, now) for event in results)


def write_in_transaction(job_events: Iterable[JobEvent]) -> None:
    """Job events written in the transaction already open, with no savepoint of their
    own: `.delay()`'s PENDING rows, written with the caller's COMMIT (a savepoint would
    be two more statements per transaction, and the caller's transaction fails as a
    whole if the write fails)."""
    jobs = merge_job_events(job_events)
    if jobs:
        now = timezone.now()
        JOB_PLAN.execute(job_row(event, now) for event in jobs)
        # A group enqueued in a transaction: its members' rows are new, so they join
        # their batch here (the recorder finds them members already, and adds nothing).
        batches.add(batches.joined(jobs))


def merge_job_events(events: Iterable[JobEvent], per_attempt: bool = False) -> list[JobEvent]:
    """Fold each job's events, in arrival order, into one: what applying them one by one
    would leave, so a batch costs one row write per job.

    `per_attempt` keeps one event per attempt instead (sinks, before events travel):
    the attempt history (`attempt_rows`) is derived from them when they are written.
    """
    merged: dict[Any, JobEvent] = {}
    for event in events:
        key = (event.task_id, event.attempt) if per_attempt else event.task_id
        current = merged.get(key)
        merged[key] = event if current is None else _fold(current, event)
    return list(merged.values())


def _fold(current: JobEvent, event: JobEvent) -> JobEvent:
    facts = {**event.facts, **current.facts}
    at = min(current.at, event.at)
    if lifecycle.supersedes(event.status, event.attempt, current.status, current.attempt):
        return JobEvent(
            current.task_id,
            event.status,
            event.attempt,
            facts,
            {**current.state, **event.state},
            at,
        )
    return JobEvent(current.task_id, current.status, current.attempt, facts, current.state, at)


def attempt_rows(events: Iterable[JobEvent]) -> list[dict[str, Any]]:
    """The attempt history these events describe, one row per (job, attempt number).

    An attempt starts with STARTED (from the pool child) and ends with its outcome;
    RETRY also comes from the retry's re-publish, carrying when the next attempt is due.
    A first attempt that succeeded has no row unless it was seen running (its STARTED
    written separately); the job row is its history.
    """
    rows: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.attempt < 1:
            continue
        state = event.state
        if event.attempt == 1 and event.status == JobStatus.SUCCESS and "started_at" in state:
            # The common case, a job done at its first try, whose STARTED came in the
            # same event: the job row already says all of it (started, finished,
            # worker), and a second row per job would double the database's work.
            continue
        if event.status == JobStatus.STARTED:
            if "started_at" not in state:
                continue  # a progress report
            row = {"status": JobStatus.STARTED, "started_at": state["started_at"]}
            if state.get("worker"):
                row["worker"] = state["worker"]
        elif event.status in _ATTEMPT_OUTCOMES:
            if event.status == JobStatus.REVOKED and "started_at" not in state:
                continue
            row = {"status": event.status}
            # A pool child folds its STARTED into the outcome before sending both.
            if state.get("started_at"):
                row["started_at"] = state["started_at"]
            if state.get("worker"):
                row["worker"] = state["worker"]
            if state.get("finished_at"):
                row["finished_at"] = state["finished_at"]
            elif event.status != JobStatus.RETRY or state.get("error"):
                row["finished_at"] = event.at
            if state.get("error"):
                row["error"] = state["error"]
            if event.status == JobStatus.RETRY and state.get("eta"):
                row["next_attempt_at"] = state["eta"]
        else:
            continue
        key = f"{event.task_id}:{event.attempt}"
        current = rows.get(key)
        if current is None:
            rows[key] = {"key": key, "task_id": event.task_id, "number": event.attempt, **row}
            continue
        # Fold as the upsert would: outcomes replace STARTED, started_at/worker fill in.
        if row["status"] == JobStatus.STARTED:
            current.setdefault("started_at", row["started_at"])
            if "worker" in row:
                current.setdefault("worker", row["worker"])
        elif current["status"] in (JobStatus.STARTED, JobStatus.RETRY):
            for fill in ("started_at", "worker"):
                if fill in current and fill in row:
                    row.pop(fill)
            current.update(row)
    return list(rows.values())


def merge_result_events(events: Iterable[ResultEvent]) -> list[ResultEvent]:
    merged: dict[str, ResultEvent] = {}
    for event in events:
        current = merged.get(event.task_id)
        if current is None:
            merged[event.task_id] = event
        elif current.fields.get("status") not in lifecycle.TERMINAL:
            merged[event.task_id] = ResultEvent(event.task_id, {**current.fields, **event.fields})
    return list(merged.values())


def job_row(event: JobEvent, now: datetime) -> dict[str, Any]:
    """The Job columns an event writes (facts and state by field name)."""
    row = {
        "task_id": event.task_id,
        "status": event.status,
        "attempts": event.attempt,
        "created_at": event.at,
        "updated_at": now,
        **event.facts,
        **event.state,
    }
    row.pop(CHORD_CALLBACK, None)  # the Batch row's, not a column (tasks.record.batches)
    return row


def _result_row(event: ResultEvent, now: datetime) -> dict[str, Any]:
    row = {"task_id": event.task_id, "date_created": now, "date_done": now, **event.fields}
    if RAW_RESULT in row:
        # What django-celery-results' _store_result writes for a plain JSON result
        # (kombu's JSON is json.dumps; no children, no request.meta, no traceback).
        row["result"] = json.dumps(row.pop(RAW_RESULT))
        row["task_args"] = json.dumps(row["task_args"])
        row["task_kwargs"] = json.dumps(row["task_kwargs"])
        row.update(_PLAIN_RESULT_COLUMNS)
    return row


_PLAIN_RESULT_COLUMNS = {
    "content_type": "application/json",
    "content_encoding": "utf-8",
    "meta": json.dumps({"children": []}),
    "traceback": None,
    "periodic_task_name": None,
}
