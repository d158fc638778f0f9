"""Running a recorded job again, as a new job linked to the old one (`retried_from`).

Both operator actions use it: "retry" of a failed or revoked job and "replay" of a dead
letter (tasks.runtime.dead_lettering). The new job is built from the row -- the real JSON
arguments, never Celery's truncated `argsrepr` -- and goes to the original queue with
the original priority and correlation id. Call it inside a transaction: the new row is
written there and the message published when it commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from celery import current_app
from celery.utils import uuid
from django.db import transaction

from tasks import correlation
from tasks.models import Job, JobStatus
from tasks.record import translate
from tasks.record.service import record_now

RETRYABLE = (JobStatus.FAILURE, JobStatus.REVOKED)


@dataclass(frozen=True)
class Rerun:
    old_job: str
    new_job: str


def rerun(job: Job) -> str:
    """Publish `job` again as a new job (after the current transaction commits)."""
    message = job.message or {}
    headers = dict(message.get("headers") or {})
    queue = message.get("queue") or job.queue or None
    priority = message.get("priority", job.priority)
    correlation_id = headers.get(correlation.HEADER) or job.correlation_id or None
    options: dict[str, Any] = {"queue": queue, "priority": priority}
    if correlation_id:
        options["headers"] = {correlation.HEADER: correlation_id}
    args, kwargs = job.args or [], job.kwargs or {}
    task = current_app.tasks.get(job.name)
    if task is not None:
        # TrackedTask inside a transaction: PENDING row now, published on commit. The
        # rerun belongs to the original request's correlation scope.
        scope = correlation.bound(correlation_id) if correlation_id else nullcontext()
        with scope:
            # Celery takes any sequence of args (these are the stored JSON list); the stub
            # says tuple.
            new_id = task.apply_async(args, kwargs, **options).id  # type: ignore[arg-type]
    else:
        # Not registered in this process (only a remote worker has it): send by name
        # once committed; the row is written now so the link exists before it runs.
        new_id = uuid()
        record_now(
            translate.pending(new_id, job.name, args, kwargs, queue, priority, correlation_id)
        )
        transaction.on_commit(
            lambda: current_app.send_task(job.name, args, kwargs, task_id=new_id, **options)
        )
    Job.objects.filter(task_id=new_id).link_rerun(job)
    return new_id


def retry_jobs(task_ids: Iterable[str]) -> list[Rerun]:
    """Operator retry: run failed or revoked jobs again; other jobs are left alone."""
    with transaction.atomic():
        jobs = list(
            Job.objects.filter(task_id__in=list(task_ids), status__in=RETRYABLE).order_by(
                "created_at"
            )
        )
        return [Rerun(job.task_id, rerun(job)) for job in jobs]
