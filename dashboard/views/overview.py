"""The overview (/dashboard/): what runs, waits and fails now, and throughput charts.

The page and its live fragment show the same context; the fragment (re-fetched by the
refresh control) is the page's whole body, so every number and chart stays current.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from dashboard.access import dashboard_view
from dashboard.read.backlog import backlog
from dashboard.read.cards import overview_cards
from dashboard.read.charts import throughput_chart
from dashboard.read.status_counts import side_by_side, status_counts
from dashboard.read.throughput import throughput_per_hour, throughput_per_minute
from dashboard.read.windows import DAY, HOUR
from tasks.operations import workers_online


@dashboard_view
def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/overview.html", {"nav": "overview", **_context()})


@dashboard_view
def overview_live(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/fragments/overview_live.html", _context())


def _context() -> dict[str, Any]:
    now = timezone.now()
    last_hour, last_day = status_counts(HOUR, now), status_counts(DAY, now)
    per_minute, per_hour = throughput_per_minute(now), throughput_per_hour(now)
    return {
        "now": now,
        "cards": overview_cards(now),
        "statuses": side_by_side(last_hour, last_day),
        "last_hour": last_hour,
        "last_day": last_day,
        "backlog": backlog(),
        "workers": workers_online(now),
        "per_minute": per_minute,
        "per_hour": per_hour,
        "minute_chart": throughput_chart(per_minute, "Finished per minute, last 24 hours", "line"),
        "hour_chart": throughput_chart(per_hour, "Finished per hour, last 30 days", "line"),
    }
