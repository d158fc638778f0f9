"""The job page (`jobs/<task_id>/`) and its live fragment (status, progress, times)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from dashboard import job_page
from dashboard.access import allowed_actions, dashboard_view


@dashboard_view
def job_detail(request: HttpRequest, task_id: str) -> HttpResponse:
    page = job_page.load_page(task_id, allowed_actions(request.user), timezone.now())
    if page is None:
        return render(
            request,
            "dashboard/job_missing.html",
            {"nav": "jobs", "task_id": task_id},
            status=404,
        )
    return render(
        request,
        "dashboard/job.html",
        {"nav": "jobs", "page": page, "job": page.summary, "here": request.get_full_path()},
    )


@dashboard_view
def job_live(request: HttpRequest, task_id: str) -> HttpResponse:
    job = job_page.load_summary(task_id, timezone.now())
    if job is None:
        return render(
            request, "dashboard/fragments/job_gone.html", {"task_id": task_id}, status=404
        )
    # `live`: the page was loaded before the job finished; the fragment says to reload.
    return render(request, "dashboard/fragments/job_live.html", {"job": job, "live": True})
