"""The job's own row as the page shows it, and the link every other part draws to a job.

Kept apart from the parts built on it (timeline, family, trace, buttons) because both
the full page and the live fragment need it, and the fragment needs nothing else: it is
refreshed every few seconds, so it reads one row by its unique task id, without payloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tasks.lifecycle import TERMINAL
from tasks.models import Job, JobStatus

#: The columns a link to another job needs (no payloads: they can be large).
REF_FIELDS = ("task_id", "name", "status", "created_at")


@dataclass(frozen=True, slots=True)
class JobRef:
    """A link to another job. `status` is "" when only the id is known (its row was
    pruned by retention, or not recorded yet)."""

    task_id: str
    name: str = ""
    status: str = ""


@dataclass(frozen=True, slots=True)
class Summary:
    """The job's own columns, without its payloads (see `JobPage` for those)."""

    task_id: str
    name: str
    status: str
    queue: str
    priority: int | None
    worker: str
    attempts: int
    progress: int
    progress_message: str
    created_at: datetime
    sent_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    eta: datetime | None
    updated_at: datetime | None
    cancel_requested_at: datetime | None
    dead_lettered_at: datetime | None
    dead_letter_resolution: str
    dead_letter_resolved_at: datetime | None
    correlation_id: str
    fingerprint: str
    #: When and why the layer last published the job again because the broker lost it,
    #: and how many times it did (0: never).
    recovered_at: datetime | None
    recoveries: int
    recovered_because: str
    #: Seconds from sent (or created) to started: what the Tasks page calls wait.
    wait_seconds: float | None
    #: Seconds from started to finished, or to now while it runs (`running`).
    run_seconds: float | None

    @property
    def final(self) -> bool:
        """Nothing changes the job any more: the page stops refreshing."""
        return self.status in TERMINAL

    @property
    def running(self) -> bool:
        return self.status == JobStatus.STARTED

    @property
    def parked_dead_letter(self) -> bool:
        return self.dead_lettered_at is not None and not self.dead_letter_resolution


def load_summary(task_id: str, now: datetime) -> Summary | None:
    """The job's columns for the live fragment (no payloads), or None if unknown."""
    job = Job.objects.filter(task_id=task_id).defer("args", "kwargs", "result", "message").first()
    return None if job is None else summarize(job, now)


def summarize(job: Job, now: datetime) -> Summary:
    end = job.finished_at or (now if job.status == JobStatus.STARTED else None)
    return Summary(
        task_id=job.task_id,
        name=job.name,
        status=job.status,
        queue=job.queue,
        priority=job.priority,
        worker=job.worker,
        attempts=job.attempts,
        progress=job.progress,
        progress_message=job.progress_message,
        created_at=job.created_at,
        sent_at=job.sent_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        eta=job.eta,
        updated_at=job.updated_at,
        cancel_requested_at=job.cancel_requested_at,
        dead_lettered_at=job.dead_lettered_at,
        dead_letter_resolution=job.dead_letter_resolution,
        dead_letter_resolved_at=job.dead_letter_resolved_at,
        correlation_id=job.correlation_id,
        fingerprint=job.fingerprint,
        recovered_at=job.recovered_at,
        recoveries=job.recoveries,
        recovered_because=job.recovered_because,
        wait_seconds=seconds_between(job.sent_at or job.created_at, job.started_at),
        run_seconds=seconds_between(job.started_at, end),
    )


def ref_of(row: Job) -> JobRef:
    """A link to `row` (loaded with at least REF_FIELDS)."""
    return JobRef(task_id=row.task_id, name=row.name, status=row.status)


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """A wait or run time; None while either end is unknown (not started, not finished)."""
    if start is None or end is None:
        return None
    return (end - start).total_seconds()
