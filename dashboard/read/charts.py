"""Chart specs for dashboard/static/dashboard/charts.js, built from the read models.

A spec is the dict charts.js draws (`{{ spec|json_script:"id" }}` beside a
`<canvas data-chart="id">`): labels, datasets with a status colour, and the URL a click
on a bucket opens (`link_template`, its `{i}` the bucket's index), so every bar leads to
the jobs behind it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any

from django.utils import timezone

from dashboard.read.explore import bucket_link_template
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
    """Succeeded and failed per bucket; a click opens the bucket's jobs (its failed jobs
    when it had failures; of `task` when given) through `dashboard:jobs-bucket`.

    One URL template with `{i}` for the bucket's index rather than a URL per bucket: a
    day of minutes would be 1,440 URLs, some 200 KB on every refresh of the overview.
    """
    span = series.step * len(series.starts)
    tz = timezone.get_current_timezone()
    return {
        "type": kind,
        "title": title,
        "labels": [bucket_label(start, series.step, span, tz) for start in series.starts],
        "datasets": [
            {"label": "Succeeded", "data": list(series.succeeded), "status": JobStatus.SUCCESS},
            {"label": "Failed", "data": list(series.failed), "status": JobStatus.FAILURE},
        ],
        "stacked": kind == "bar",
        "link_template": bucket_link_template(series.starts[0], series.step, task),
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
