"""Demo pages: start `sleep_with_progress` and watch the job.

The POST handler is the pattern the README recommends: enqueue inside the request's
transaction, so the job exists only if the transaction commits.
"""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from demo.tasks import sleep_with_progress
from tasks.models import Job


@staff_member_required
@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        with transaction.atomic():
            result = sleep_with_progress.delay(seconds=3, steps=6)
        return redirect(f"{request.path}?job={result.id}")
    task_id = request.GET.get("job", "")
    recent = Job.objects.named(sleep_with_progress.name)[:10]
    return render(request, "demo/index.html", {"task_id": task_id, "recent": recent})


@staff_member_required
def job_status(request: HttpRequest, task_id: str) -> JsonResponse:
    job = get_object_or_404(Job, task_id=task_id)
    return JsonResponse(
        {
            "task_id": job.task_id,
            "status": job.status,
            "progress": job.progress,
            "progress_message": job.progress_message,
            "attempts": job.attempts,
            "worker": job.worker,
            "result": job.result,
            "error": job.error,
        }
    )
