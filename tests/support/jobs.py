"""Waiting for the worker: poll the real database until a job reaches a state."""

from __future__ import annotations

import time
from collections.abc import Iterable

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
