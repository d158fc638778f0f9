"""Jobs that succeeded and failed per minute, hour or day: the throughput charts.

Read from JobTally rows of one period over a range of starts (the unique index's
leading columns), summed over task names and queues; buckets in which nothing finished
are filled with zeros so the chart's time axis stays even. Day buckets add up hour rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Sum
from django.utils import timezone

from dashboard.read.buckets import bucket_starts, fill, regroup
from dashboard.read.windows import HOUR, HOUR_ROWS, MINUTE, MINUTE_ROWS, Window
from tasks.models import JobStatus, JobTally

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
    period = MINUTE_ROWS if step == MINUTE else HOUR_ROWS
    starts = bucket_starts(first, last, step)
    rows = JobTally.objects.filter(
        period=period,
        start__gte=starts[0],
        start__lt=starts[-1] + step,
        status__in=[JobStatus.SUCCESS, JobStatus.FAILURE],
    )
    if name is not None:
        rows = rows.filter(name=name)
    sums: dict[str, dict[datetime, int]] = {JobStatus.SUCCESS: {}, JobStatus.FAILURE: {}}
    for row in rows.order_by().values("start", "status").annotate(total=Sum("count")):
        sums[row["status"]][row["start"]] = int(row["total"] or 0)
    if step > HOUR:
        sums = {status: regroup(values, step) for status, values in sums.items()}
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
