"""The jobs explorer: one search box, the URL is the query, newest first, bulk actions,
CSV export and autocomplete."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils import timezone

from dashboard.access import allowed_actions, dashboard_view
from dashboard.export import csv_lines
from dashboard.read.explore import bucket_start, jobs_url
from dashboard.read.throughput import bucket_query
from dashboard.search import suggestions
from dashboard.search.errors import FilterError
from dashboard.search.jobs import BadCursor, capped_count, matching_jobs, page_after
from dashboard.search.language import KEYS, parse
from tasks.conf import layer_settings
from tasks.operations import BulkAction

PAGE_SIZE = 50
#: Matching rows counted at most (a COUNT over a LIMIT subquery); past it "more than".
COUNT_CAP = 10_000
#: The columns a row of the list shows; the heavy ones (args, result, traceback,
#: message) stay in the database.
LIST_COLUMNS = (
    "id",
    "task_id",
    "name",
    "status",
    "queue",
    "worker",
    "attempts",
    "created_at",
    "started_at",
    "finished_at",
    "error",
    "progress",
    "dead_lettered_at",
)


@dashboard_view
def explorer(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    context: dict[str, object] = {
        "nav": "jobs",
        "query": query,
        "keys": KEYS,
        "actions": [a for a in BulkAction if a in allowed_actions(request.user)],
    }
    try:
        jobs = matching_jobs(parse(query))
        page = page_after(jobs.only(*LIST_COLUMNS), request.GET.get("after") or None, PAGE_SIZE)
    except FilterError as exc:
        context["error"] = exc
        return render(request, "dashboard/jobs.html", context, status=400)
    except BadCursor:
        page = page_after(jobs.only(*LIST_COLUMNS), None, PAGE_SIZE)
    count, more = capped_count(jobs, COUNT_CAP)
    context.update(
        page=page,
        count=count,
        more=more,
        first_page=not request.GET.get("after"),
        now=timezone.now(),
    )
    return render(request, "dashboard/jobs.html", context)


@dashboard_view
def export(request: HttpRequest) -> HttpResponseBase:
    query = request.GET.get("q", "").strip()
    try:
        jobs = matching_jobs(parse(query))
    except FilterError as exc:
        return HttpResponse(f"Bad filter: {exc}", status=400, content_type="text/plain")
    response = StreamingHttpResponse(
        csv_lines(jobs, layer_settings().export_limit), content_type="text/csv; charset=utf-8"
    )
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="jobs-{stamp}.csv"'
    return response


@dashboard_view
def suggest(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"suggestions": suggestions.complete(request.GET.get("q", ""))})


#: Chart bucket widths a `bucket` link may name: a minute, an hour, a day.
BUCKET_STEPS = {60, 3600, 86400}


@dashboard_view
def bucket(request: HttpRequest) -> HttpResponse:
    """A chart bucket's jobs: the explorer with that bucket's filter (the charts link
    here with the bucket's index rather than carrying a URL per bucket)."""
    try:
        first, step, index = (int(request.GET[key]) for key in ("first", "step", "i"))
    except (KeyError, ValueError):
        return HttpResponseBadRequest("first, step and i must be whole numbers.")
    if step not in BUCKET_STEPS or not 0 <= index <= 100_000:
        return HttpResponseBadRequest("Not a chart bucket.")
    start = bucket_start(first, step, index)
    q = bucket_query(start, timedelta(seconds=step), request.GET.get("task") or None)
    return HttpResponseRedirect(jobs_url(q))
