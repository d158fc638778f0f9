"""The two questions `bench.scale` has timed since before the dashboard's read models
(dashboard.read), answered by them: jobs by status, and run-time percentiles per task,
over the time since a moment. New code calls dashboard.read directly.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from dashboard.read.status_counts import status_counts as counts_over
from dashboard.read.task_stats import task_stats


def status_counts(since: datetime) -> dict[str, int]:
    """Jobs by status since `since` (finished ones by finish time, the others created
    since then and counted up to 10,000); statuses with none are left out."""
    counts = counts_over(timezone.now() - since)
    return {c.status: c.count.count for c in counts.counts if c.count.count}


def runtime_percentiles(since: datetime) -> dict[str, dict[str, float]]:
    """Per task name: estimated p50 and p95 run time (seconds) of the jobs that
    finished since `since` (dashboard.read.percentiles)."""
    table = task_stats(timezone.now() - since)
    return {
        task.name: {"p50": task.run.p50.seconds, "p95": task.run.p95.seconds}
        for task in table.tasks
        if task.run.p50 is not None and task.run.p95 is not None
    }
