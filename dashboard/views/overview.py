"""The overview (/dashboard/): what runs, waits and fails now, and throughput charts;
on top, when the broker lost its data in the last 24 hours, what the layer re-published.

The page has two live fragments: its numbers, re-fetched at the refresh control's
interval, and its charts, re-fetched at most once a minute (they move by the minute, and
they are most of the page's cost: twenty dashboards refreshing every 2 s must not slow
the workers that share the database).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from dashboard.access import dashboard_view
from dashboard.read.backlog import backlog
from dashboard.read.broker_losses import loss_notice
from dashboard.read.cards import overview_cards
from dashboard.read.charts import throughput_chart
from dashboard.read.shared import shared
from dashboard.read.status_counts import side_by_side, status_counts
from dashboard.read.throughput import throughput_per_hour, throughput_per_minute
from dashboard.read.windows import DAY, HOUR
from tasks.operations import workers_online


@dashboard_view
def overview(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    context = {"nav": "overview", **_numbers(now), **_charts(now)}
    return render(request, "dashboard/overview.html", context)


@dashboard_view
def overview_live(request: HttpRequest) -> HttpResponse:
    numbers = shared("overview-numbers", lambda: _numbers(timezone.now()))
    return render(request, "dashboard/fragments/overview_live.html", numbers)


@dashboard_view
def overview_charts(request: HttpRequest) -> HttpResponse:
    charts = shared("overview-charts", lambda: _charts(timezone.now()))
    return render(request, "dashboard/fragments/overview_charts.html", charts)


def _numbers(now: datetime) -> dict[str, Any]:
    last_hour, last_day = status_counts(HOUR, now), status_counts(DAY, now)
    workers = workers_online(now)
    return {
        "now": now,
        "cards": overview_cards(now, workers=len(workers)),
        "statuses": side_by_side(last_hour, last_day),
        "last_hour": last_hour,
        "last_day": last_day,
        "backlog": backlog(),
        "workers": workers,
        "broker_loss": loss_notice(now),
    }


def _charts(now: datetime) -> dict[str, Any]:
    per_minute, per_hour = throughput_per_minute(now), throughput_per_hour(now)
    return {
        "per_minute": per_minute,
        "per_hour": per_hour,
        "minute_chart": throughput_chart(per_minute, "Finished per minute, last 24 hours", "line"),
        "hour_chart": throughput_chart(per_hour, "Finished per hour, last 30 days", "line"),
    }
