"""The Running page's read model: jobs a worker is running now, newest first.

One range of the `job_status_created` index (status = STARTED, by created_at
descending), cut at `LIMIT` rows; the total is a capped count over the same range, so
neither query grows with the job table, only with what is running. A job whose worker
is lost (tasks.operations.lost_workers: a third, small query on the heartbeat rows) is
marked at risk.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime

from tasks.models import Job
from tasks.operations import BulkAction, Tally, bounded_count, lost_workers

#: Rows listed, newest first; the rest are in the explorer (status:started). Every
#: open Running tab re-renders them every few seconds, so they are kept few.
LIMIT = 50
#: How far the "N running" figure counts before it says "more than".
COUNT_CAP = 1_000
FIELDS = (
    "task_id",
    "name",
    "queue",
    "worker",
    "created_at",
    "started_at",
    "progress",
    "progress_message",
    "cancel_requested_at",
)
#: The bulk form's buttons, in this order, among those the user may use.
CANCELS = (BulkAction.CANCEL, BulkAction.HARD_CANCEL)


@dataclass(frozen=True, slots=True)
class RunningJob:
    task_id: str
    name: str
    queue: str
    worker: str
    started_at: datetime | None
    #: Seconds since it started (None when the start time is not recorded yet).
    run_seconds: float | None
    progress: int
    progress_message: str
    cancel_requested_at: datetime | None
    #: Its worker is lost (no heartbeat, no clean shutdown): nobody may be running it.
    at_risk: bool = False


@dataclass(frozen=True, slots=True)
class Running:
    jobs: tuple[RunningJob, ...]
    total: Tally
    limit: int
    #: The cancel actions this user may take (empty: no checkboxes, no buttons).
    actions: tuple[BulkAction, ...]

    @property
    def truncated(self) -> bool:
        return self.total.more or self.total.count > len(self.jobs)


def load(allowed: AbstractSet[BulkAction], now: datetime) -> Running:
    rows = list(Job.objects.running().order_by("-created_at").only(*FIELDS)[:LIMIT])
    lost = lost_workers(now) if rows else frozenset()
    return Running(
        jobs=tuple(_row(job, now, lost) for job in rows),
        total=(
            bounded_count(Job.objects.running(), COUNT_CAP)
            if len(rows) >= LIMIT
            else Tally(len(rows))
        ),
        limit=LIMIT,
        actions=tuple(action for action in CANCELS if action in allowed),
    )


def _row(job: Job, now: datetime, lost: frozenset[str]) -> RunningJob:
    return RunningJob(
        task_id=job.task_id,
        name=job.name,
        queue=job.queue,
        worker=job.worker,
        started_at=job.started_at,
        run_seconds=(now - job.started_at).total_seconds() if job.started_at else None,
        progress=job.progress,
        progress_message=job.progress_message,
        cancel_requested_at=job.cancel_requested_at,
        at_risk=job.worker in lost,
    )
