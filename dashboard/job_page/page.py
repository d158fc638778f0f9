"""The whole job page: its row, payloads, attempts, family, trace and buttons, read once.

Here rather than in the view so the view only parses and renders; here rather than in a
part because it is the one place that knows every part. Arguments, keyword arguments and
the result go through `redact` here, so no template can show them unmasked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dashboard.job_page.actions import Button, actions_for
from dashboard.job_page.family import Family, family_of
from dashboard.job_page.summary import Summary, summarize
from dashboard.job_page.timeline import Attempt, Moment, attempts_of, timeline_of
from dashboard.job_page.trace import Trace, trace_of
from dashboard.redaction import redact
from tasks.models import Job, JobAttempt
from tasks.operations import BulkAction

ATTEMPTS_SHOWN = 100


@dataclass(frozen=True, slots=True)
class JobPage:
    summary: Summary
    timeline: tuple[Moment, ...]
    attempts: tuple[Attempt, ...]
    more_attempts: bool
    family: Family
    trace: Trace | None
    #: Redacted (dashboard.redaction): safe to show.
    args: Any
    kwargs: Any
    result: Any
    error: str
    traceback: str
    actions: tuple[Button, ...] = field(default=())


def load_page(task_id: str, allowed: Iterable[BulkAction], now: datetime) -> JobPage | None:
    """Everything the job page shows, or None when no job has this id."""
    job = Job.objects.filter(task_id=task_id).defer("message").first()
    if job is None:
        return None
    summary = summarize(job, now)
    # By `JobAttempt.task_id`, bounded: a job retried without end still renders.
    attempt_rows = list(
        JobAttempt.objects.filter(task_id=task_id).order_by("number")[: ATTEMPTS_SHOWN + 1]
    )
    attempts = attempts_of(summary, attempt_rows[:ATTEMPTS_SHOWN])
    return JobPage(
        summary=summary,
        timeline=timeline_of(summary, attempts),
        attempts=attempts,
        more_attempts=len(attempt_rows) > ATTEMPTS_SHOWN,
        family=family_of(job),
        trace=trace_of(job, now),
        args=redact(job.args),
        kwargs=redact(job.kwargs),
        result=redact(job.result),
        error=job.error,
        traceback=job.traceback,
        actions=actions_for(job, allowed),
    )
