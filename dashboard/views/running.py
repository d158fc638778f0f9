"""Running now (`running/`): jobs a worker runs at this moment, with live progress."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from dashboard import running_page
from dashboard.access import allowed_actions, dashboard_view
from dashboard.read.shared import shared
from tasks.operations import BulkAction


@dashboard_view
def running(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/running.html", _context(request, nav="running"))


@dashboard_view
def running_live(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/fragments/running_rows.html", _context(request))


def _running(allowed: frozenset[BulkAction]) -> running_page.Running:
    # The rows carry the user's buttons: users with the same permissions share them.
    return shared(("running", allowed), lambda: running_page.load(allowed, timezone.now()))


def _context(request: HttpRequest, **extra: str) -> dict[str, object]:
    return {
        "running": _running(frozenset(allowed_actions(request.user))),
        # Where an action's preview sends the operator back: the page, not the fragment.
        "back": reverse("dashboard:running"),
        **extra,
    }
