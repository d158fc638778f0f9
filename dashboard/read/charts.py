"""Chart specs for dashboard/static/dashboard/charts.js, built from the read models.

A spec is the dict charts.js draws (`{{ spec|json_script:"id" }}` beside a
`<canvas data-chart="id">`): labels, datasets with a status colour, and per label the
explorer URL a click opens, so every bar leads to the jobs behind it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any

from django.urls import reverse
from django.utils import timezone

from dashboard.read.explore import jobs_url, query, statuses
from dashboard.read.task_stats import HistogramBar
from dashboard.read.throughput import Throughput
from dashboard.read.windows import DAY
from tasks.models import JobStatus

Chart = dict[str, Any]


def bucket_label(start: datetime, step: timedelta, span: timedelta, tz: tzinfo) -> str:
    """A bucket's start in local time, as short as the chart's span allows."""
    local = start.astimezone(tz)
    if step >= DAY:
        return local.strftime("%b %d")
    if span > DAY:
        return local.strftime("%b %d %H:%M")
    return local.strftime("%H:%M")


def throughput_chart(
    series: Throughput, title: str, kind: str = "bar", task: str | None = None
) -> Chart:
    """Succeeded and failed per bucket; a click lists the bucket's failed jobs (of `task`
    when given; all of the bucket's finished jobs when it had no failure)."""
    span = series.step * len(series.starts)
    task_term = f"task:{task}" if task else ""
    # Looked up once: a day of minutes is 1,440 links.
    tz, explorer = timezone.get_current_timezone(), reverse("dashboard:jobs")
    links = []
    for start, failed in zip(series.starts, series.failed, strict=True):
        wanted = (JobStatus.FAILURE,) if failed else (JobStatus.SUCCESS, JobStatus.FAILURE)
        end = start + series.step
        q = query(statuses(*wanted), task_term, after=start, before=end, tz=tz)
        links.append(jobs_url(q, explorer))
    return {
        "type": kind,
        "title": title,
        "labels": [bucket_label(start, series.step, span, tz) for start in series.starts],
        "datasets": [
            {"label": "Succeeded", "data": list(series.succeeded), "status": JobStatus.SUCCESS},
            {"label": "Failed", "data": list(series.failed), "status": JobStatus.FAILURE},
        ],
        "stacked": kind == "bar",
        "links": links,
    }


def histogram_chart(bars: list[HistogramBar], title: str) -> Chart:
    """A run-time histogram: jobs per duration bucket."""
    return {
        "type": "bar",
        "title": title,
        "labels": [bar.label for bar in bars],
        "datasets": [{"label": "Jobs", "data": [bar.count for bar in bars]}],
        "stacked": False,
    }
