"""Jobs by status over a window ending now ("the last hour", "the last 24 hours").

Finished statuses (SUCCESS, FAILURE, REVOKED) are summed from the JobTally rows the
recorder wrote as the jobs finished, so they count jobs by when they finished, exactly,
whatever the size of the job table. Unfinished statuses have no tally (a job passes
through them): they are bounded counts of the rows created in the window, read through
the (status, created_at) index and stopping at CAP.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Sum
from django.utils import timezone

from dashboard.read.explore import query, statuses
from dashboard.read.tally_rows import in_span
from dashboard.read.windows import Span, tally_span
from tasks.models import Job, JobStatus, JobTally
from tasks.operations import Tally, bounded_count

#: Counts of job rows stop here ("more than 1,000"): a live number read every 2 s by
#: every open dashboard must cost a bounded index read, and past a thousand jobs
#: waiting, running or dead-lettered the operator's question is "which", not "exactly how
#: many" (the explorer lists them).
CAP = 1_000
FINISHED = (JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.REVOKED)
UNFINISHED = (
    JobStatus.PENDING,
    JobStatus.SENT,
    JobStatus.RECEIVED,
    JobStatus.STARTED,
    JobStatus.RETRY,
)


@dataclass(frozen=True, slots=True)
class StatusCount:
    status: str
    count: Tally
    q: str
    """The explorer filter listing these jobs."""
    finished: bool
    """Counted by finish time from the tallies (else: rows created in the window)."""


@dataclass(frozen=True, slots=True)
class StatusCounts:
    start: datetime
    counts: tuple[StatusCount, ...]

    def of(self, status: str) -> StatusCount:
        return next(count for count in self.counts if count.status == status)


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One status over two windows, for a table with a column per window."""

    status: str
    short: StatusCount
    long: StatusCount


def status_counts(span: timedelta, now: datetime | None = None) -> StatusCounts:
    """Every status over the last `span`: tallied finished jobs, bounded unfinished ones."""
    window = tally_span(now or timezone.now(), span)
    finished = finished_counts(window)
    counts = [
        StatusCount(
            status,
            Tally(finished.get(status, 0)),
            query(statuses(status), after=window.start),
            finished=True,
        )
        for status in FINISHED
    ]
    counts += [
        StatusCount(
            status,
            bounded_count(Job.objects.filter(status=status, created_at__gte=window.start), CAP),
            query(statuses(status), after=window.start),
            finished=False,
        )
        for status in UNFINISHED
    ]
    order = list(JobStatus.values)
    return StatusCounts(window.start, tuple(sorted(counts, key=lambda c: order.index(c.status))))


def finished_counts(window: Span) -> dict[str, int]:
    """SUCCESS / FAILURE / REVOKED totals of the tally rows of a span."""
    rows = (
        JobTally.objects.filter(in_span(window))
        .order_by()
        .values("status")
        .annotate(total=Sum("count"))
    )
    return {row["status"]: int(row["total"] or 0) for row in rows}


def side_by_side(short: StatusCounts, long: StatusCounts) -> list[StatusRow]:
    """The rows of a status table with one column per window."""
    return [StatusRow(c.status, c, long.of(c.status)) for c in short.counts]
