"""The dashboard's questions about jobs, as queries that stay fast on a large table.

Each filters on `created_at` (or status + created_at) first, so PostgreSQL reads only
the index range of the period asked about, never the whole table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Count

from tasks.models import Job


def status_counts(since: datetime) -> dict[str, int]:
    """Jobs created since `since`, by status."""
    rows = Job.objects.since(since).order_by().values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def runtime_percentiles(since: datetime) -> dict[str, dict[str, float]]:
    """Per task name: p50 and p95 run time (seconds) of jobs that succeeded since `since`."""
    finished = Job.objects.succeeded().since(since).filter(started_at__isnull=False)
    if connection.vendor == "postgresql":
        return _postgres_percentiles(finished)
    by_name: dict[str, list[float]] = {}
    for name, started, ended in finished.values_list("name", "started_at", "finished_at"):
        if started is None or ended is None:
            continue  # no run time to count (PostgreSQL's percentile_cont skips it too)
        by_name.setdefault(name, []).append((ended - started).total_seconds())
    return {name: _percentiles(sorted(values)) for name, values in by_name.items()}


RUNTIME = "EXTRACT(EPOCH FROM j.finished_at - j.started_at)"
PERCENTILES_SQL = (
    f"SELECT j.name, percentile_cont(0.5) WITHIN GROUP (ORDER BY {RUNTIME}),"  # noqa: S608
    f" percentile_cont(0.95) WITHIN GROUP (ORDER BY {RUNTIME})"
    " FROM tasklayer_job j WHERE j.id IN ({ids}) GROUP BY j.name"
)


def _postgres_percentiles(queryset: Any) -> dict[str, dict[str, float]]:
    # The id subquery is the ORM's own SQL, with its values as bound parameters.
    sql, params = queryset.values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(PERCENTILES_SQL.format(ids=sql), params)
        return {
            name: {"p50": float(p50), "p95": float(p95)} for name, p50, p95 in cursor.fetchall()
        }


def _percentiles(values: list[float]) -> dict[str, float]:
    def at(q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))]

    return {"p50": at(0.5), "p95": at(0.95)}
