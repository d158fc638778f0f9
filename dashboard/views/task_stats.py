"""Tasks (/dashboard/tasks/ and /dashboard/tasks/<name>/): per task name over a window,
how many finished and failed, and run and wait time percentiles; a task's page adds its
run-time histogram, its throughput and its failure groups. `?window=` picks 1h, 24h
(the default), 7d or 30d."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from dashboard.access import dashboard_view
from dashboard.read.charts import histogram_chart, throughput_chart
from dashboard.read.explore import query, statuses
from dashboard.read.failure_groups import failure_groups
from dashboard.read.task_stats import run_histogram, task_stats
from dashboard.read.throughput import task_throughput
from dashboard.read.windows import WINDOWS, window_named
from tasks.models import JobStatus


@dashboard_view
def task_list(request: HttpRequest) -> HttpResponse:
    window = window_named(request.GET.get("window"))
    context = {"nav": "tasks", "window": window, "windows": WINDOWS}
    return render(request, "dashboard/tasks.html", {**context, "table": task_stats(window.span)})


@dashboard_view
def task_detail(request: HttpRequest, name: str) -> HttpResponse:
    window = window_named(request.GET.get("window"))
    now = timezone.now()
    table = task_stats(window.span, now, name=name)
    series = task_throughput(name, window, now)
    return render(
        request,
        "dashboard/tasks_detail.html",
        {
            "nav": "tasks",
            "name": name,
            "window": window,
            "windows": WINDOWS,
            "start": table.start,
            "stats": table.tasks[0] if table.tasks else None,
            "histogram": histogram_chart(
                run_histogram(name, window.span, now), f"Run time of {name}"
            ),
            "throughput": throughput_chart(series, f"{name} per {window.step_label}", task=name),
            "series": series,
            "groups": failure_groups(window.span, now, name=name),
            "jobs_q": f"task:{name}",
            "failures_q": query(statuses(JobStatus.FAILURE), f"task:{name}", after=table.start),
        },
    )
