"""Activity: the audit trail of what operators did to jobs (dashboard and admin)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from dashboard import audit
from dashboard.access import dashboard_view


@dashboard_view
def activity(request: HttpRequest) -> HttpResponse:
    return render(
        request, "dashboard/activity.html", {"nav": "activity", "entries": audit.recent(200)}
    )
