"""Failures, grouped (/dashboard/failures/): each failure group seen in a window, with
its counts, a sample and "retry / replay / purge this group" through the bulk actions'
preview. `?window=` picks 1h, 24h (the default), 7d or 30d."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from dashboard.access import allowed_actions, dashboard_view
from dashboard.read.failure_groups import failure_groups
from dashboard.read.shared import shared
from dashboard.read.windows import WINDOWS, window_named
from tasks.operations import BulkAction

#: The actions offered per group, in this order (each still needs its permission).
GROUP_ACTIONS = (BulkAction.RETRY, BulkAction.REPLAY, BulkAction.PURGE)


@dashboard_view
def failures(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/failures.html", {"nav": "failures", **_context(request)})


@dashboard_view
def failures_live(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/fragments/failures_live.html", _context(request))


def _context(request: HttpRequest) -> dict[str, Any]:
    window = window_named(request.GET.get("window"))
    query = urlencode({"window": window.key})
    allowed = allowed_actions(request.user)
    return {
        "window": window,
        "windows": WINDOWS,
        "found": shared(("failures", window.key), lambda: failure_groups(window.span)),
        "group_actions": [action for action in GROUP_ACTIONS if action in allowed],
        "page_url": f"{reverse('dashboard:failures')}?{query}",
        "live_url": f"{reverse('dashboard:failures-live')}?{query}",
    }
