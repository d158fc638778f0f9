"""The correlation trace: every job of one request on one time axis.

Its own module because it carries geometry (where each bar starts, how much of it is
waiting and running) that no other part needs. One bounded read by
`job_correlation_other`, the first TRACE_LIMIT jobs by creation; past it, "more".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dashboard.job_page.summary import REF_FIELDS, JobRef, ref_of, seconds_between
from tasks.lifecycle import TERMINAL
from tasks.models import Job, JobStatus

TRACE_LIMIT = 200
TRACE_FIELDS = (*REF_FIELDS, "sent_at", "started_at", "finished_at")


@dataclass(frozen=True, slots=True)
class TraceBar:
    """One job on the correlation trace: where its bar starts and how long it waits and
    runs, as percentages of the whole trace's span."""

    job: JobRef
    created_at: datetime
    offset: float
    wait: float
    run: float
    wait_seconds: float | None
    run_seconds: float | None
    current: bool

    @property
    def style(self) -> str:
        """Inline geometry (the only per-row values; colours come from the CSS classes).

        Formatted here, not in the template, so a locale's decimal comma never reaches CSS.
        """
        return f"margin-left:{self.offset:.3f}%;width:{max(self.wait + self.run, 0.4):.3f}%"

    @property
    def wait_share(self) -> str:
        """The waiting part's share of the bar's own width (CSS flex-basis)."""
        total = self.wait + self.run
        return f"{100 * self.wait / total:.3f}%" if total > 0 else "0%"


@dataclass(frozen=True, slots=True)
class Trace:
    correlation_id: str
    bars: tuple[TraceBar, ...]
    more: bool
    start: datetime | None
    span_seconds: float


def trace_of(job: Job, now: datetime) -> Trace | None:
    """Every job sharing this one's correlation id, on one time axis (the first 200 by
    creation). None when the job has no correlation id."""
    if not job.correlation_id:
        return None
    rows = list(
        Job.objects.correlated(job.correlation_id)
        .order_by("created_at", "id")
        .only(*TRACE_FIELDS)[: TRACE_LIMIT + 1]
    )
    shown = rows[:TRACE_LIMIT]
    if not shown:
        return Trace(job.correlation_id, (), False, None, 0.0)
    start = shown[0].created_at
    end = max(_end(row, now) for row in shown)
    span = max((end - start).total_seconds(), 0.001)

    def percent(moment: datetime) -> float:
        return max(0.0, min(100.0, 100 * (moment - start).total_seconds() / span))

    bars = []
    for row in shown:
        began = percent(row.created_at)
        started = percent(row.started_at) if row.started_at else percent(_end(row, now))
        ended = percent(_end(row, now))
        bars.append(
            TraceBar(
                job=ref_of(row),
                created_at=row.created_at,
                offset=began,
                wait=max(0.0, started - began),
                run=max(0.0, ended - started) if row.started_at else 0.0,
                wait_seconds=seconds_between(row.sent_at or row.created_at, row.started_at),
                run_seconds=seconds_between(
                    row.started_at,
                    row.finished_at or (now if row.status == JobStatus.STARTED else None),
                ),
                current=row.task_id == job.task_id,
            )
        )
    return Trace(job.correlation_id, tuple(bars), len(rows) > TRACE_LIMIT, start, span)


def _end(row: Job, now: datetime) -> datetime:
    """Where a job's bar ends: when it finished, now while it is unfinished."""
    if row.finished_at:
        return row.finished_at
    if row.status in TERMINAL:
        return row.started_at or row.created_at
    return max(now, row.created_at)
