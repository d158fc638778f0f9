"""Jobs that succeeded and failed per minute, hour or day: the throughput charts.

All tasks: StatusTally rows of one period (the recorder's per-status totals: 1,440
rows per status for a day of minutes, whatever the number of tasks and queues). One
task: its JobTally rows through the (name, period, start) index, summed over queues.
Buckets in which nothing finished are filled with zeros so the time axis stays even.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet, Sum
from django.utils import timezone

from dashboard.read.buckets import bucket_starts, fill
from dashboard.read.explore import query, statuses
from dashboard.read.windows import DAY, DAY_ROWS, HOUR, HOUR_ROWS, MINUTE, MINUTE_ROWS, Window
from tasks.models import JobStatus, JobTally, StatusTally

PERIOD_OF_STEP = {MINUTE: MINUTE_ROWS, HOUR: HOUR_ROWS, DAY: DAY_ROWS}
MINUTES_PER_DAY = 24 * 60
HOURS_PER_30_DAYS = 30 * 24


@dataclass(frozen=True, slots=True)
class Throughput:
    """Per bucket of `step` from starts[0]: jobs that succeeded and that failed."""

    step: timedelta
    starts: tuple[datetime, ...]
    succeeded: tuple[int, ...]
    failed: tuple[int, ...]

    @property
    def total_succeeded(self) -> int:
        return sum(self.succeeded)

    @property
    def total_failed(self) -> int:
        return sum(self.failed)


def throughput(
    step: timedelta, first: datetime, last: datetime, name: str | None = None
) -> Throughput:
    """Succeeded and failed per bucket of `step` (a minute, an hour or a day) from the
    bucket holding `first` to the one holding `last`; of one task when `name` is given."""
    period = PERIOD_OF_STEP[step]
    starts = bucket_starts(first, last, step)
    in_range = {
        "period": period,
        "start__gte": starts[0],
        "start__lt": starts[-1] + step,
        "status__in": [JobStatus.SUCCESS, JobStatus.FAILURE],
    }
    rows: QuerySet[Any] = (
        StatusTally.objects.filter(**in_range)
        if name is None
        else JobTally.objects.filter(name=name, **in_range)
    )
    sums: dict[str, dict[datetime, int]] = {JobStatus.SUCCESS: {}, JobStatus.FAILURE: {}}
    for row in rows.order_by().values("start", "status").annotate(total=Sum("count")):
        sums[row["status"]][row["start"]] = int(row["total"] or 0)
    return Throughput(
        step,
        tuple(starts),
        tuple(fill(starts, sums[JobStatus.SUCCESS])),
        tuple(fill(starts, sums[JobStatus.FAILURE])),
    )


def throughput_per_minute(now: datetime | None = None) -> Throughput:
    """The last 24 hours, per minute (the overview's first chart)."""
    now = now or timezone.now()
    return throughput(MINUTE, now - (MINUTES_PER_DAY - 1) * MINUTE, now)


def throughput_per_hour(now: datetime | None = None) -> Throughput:
    """The last 30 days, per hour (the overview's second chart)."""
    now = now or timezone.now()
    return throughput(HOUR, now - (HOURS_PER_30_DAYS - 1) * HOUR, now)


def task_throughput(name: str, window: Window, now: datetime | None = None) -> Throughput:
    """One task over a window, in the window's buckets (minutes, hours or days)."""
    now = now or timezone.now()
    return throughput(window.step, now - window.span + window.step, now, name=name)


def bucket_query(start: datetime, step: timedelta, task: str | None = None) -> str:
    """The explorer filter of one chart bucket: its failed jobs when it had failures,
    else all its finished jobs (of `task` when given). One tally row answers which."""
    failed = throughput(step, start, start, name=task).total_failed
    wanted = (JobStatus.FAILURE,) if failed else (JobStatus.SUCCESS, JobStatus.FAILURE)
    return query(
        statuses(*wanted), f"task:{task}" if task else "", after=start, before=start + step
    )
