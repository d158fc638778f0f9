"""Jobs in the test database: waiting for a worker to bring one to a state (polling the
real database), and rows written as the recorder would."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from tasks.models import Job, JobStatus

FINISHED = {JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.REVOKED}


def wait_for_job(task_id: str, statuses: Iterable[str] = FINISHED, timeout: float = 30.0) -> Job:
    wanted = set(statuses)
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        job = Job.objects.filter(task_id=task_id).first()
        if job is not None and job.status in wanted:
            return job
        time.sleep(0.1)
    raise AssertionError(
        f"job {task_id} did not reach {sorted(wanted)} in {timeout}s; last seen: "
        f"{job.status if job else 'no row'}"
    )


def wait_for_jobs(task_ids: Iterable[str], timeout: float = 30.0) -> list[Job]:
    return [wait_for_job(task_id, timeout=timeout) for task_id in task_ids]


def recorded_job(status: str, *, sent: datetime | None = None, **fields: Any) -> str:
    """A row as the recorder writes it for a `tests.faults.count_run` job on queue `q`,
    published 20 s ago unless `sent` says when, with `fields` on top; its task id."""
    task_id = uuid.uuid4().hex
    now = timezone.now()
    Job.objects.create(
        task_id=task_id,
        name="tests.faults.count_run",
        queue="q",
        args=[task_id],
        kwargs={},
        status=status,
        created_at=now - timedelta(seconds=30),
        sent_at=sent or now - timedelta(seconds=20),
        **fields,
    )
    return task_id
