"""Bulk actions: preview what an action would do, then do it.

Both steps are POSTs with CSRF, and both check the action's permission, so a forged
request from a user without it gets 403. The preview counts, for every action this user
may take, how many jobs it would touch and how many it would skip and why; confirming
one applies it to the same scope, writes the audit entry and reports "N done, M skipped".
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from dashboard import audit
from dashboard.access import allowed_actions, dashboard_view, require_action
from dashboard.scope import Scope
from dashboard.search.errors import FilterError
from tasks import operations
from tasks.conf import layer_settings
from tasks.operations import BulkAction, BulkLimitExceeded


@dashboard_view
@require_POST
def preview(request: HttpRequest) -> HttpResponse:
    asked = _permitted_action(request)
    if isinstance(asked, HttpResponse):
        return asked
    action = asked
    try:
        scope = Scope.from_form(request.POST)
    except (FilterError, ValueError) as exc:
        messages.error(request, str(exc))
        return _back(request)
    limit = layer_settings().bulk_action_limit
    jobs = scope.jobs()
    chosen = operations.preview_bulk(action, jobs, limit)
    others = [
        operations.preview_bulk(other, jobs, limit)
        for other in BulkAction
        if other is not action and other in allowed_actions(request.user)
    ]
    return render(
        request,
        "dashboard/action_preview.html",
        {
            "nav": "jobs",
            "chosen": chosen,
            "others": others,
            "scope": scope,
            "next": _next_url(request),
            "explorer_url": _explorer_url(scope),
        },
    )


@dashboard_view
@require_POST
def apply(request: HttpRequest) -> HttpResponse:
    asked = _permitted_action(request)
    if isinstance(asked, HttpResponse):
        return asked
    action = asked
    try:
        scope = Scope.from_form(request.POST)
        result = operations.apply_bulk(
            action,
            scope.jobs(),
            layer_settings().bulk_action_limit,
            requested_by=request.user.get_username(),
        )
    except (FilterError, ValueError, BulkLimitExceeded) as exc:
        messages.error(request, str(exc))
        return _back(request)
    audit.record(
        request.user, action.value, str(result), scope=scope.describe(), task_ids=result.task_ids
    )
    messages.success(request, str(result))
    return _back(request)


def _permitted_action(request: HttpRequest) -> BulkAction | HttpResponse:
    """The POSTed action, if the user holds its permission (else PermissionDenied: 403);
    a 400 answer for a name that is no action."""
    try:
        action = BulkAction(request.POST.get("action", ""))
    except ValueError:
        return HttpResponseBadRequest("Unknown action.")
    require_action(request.user, action)
    return action


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("dashboard:jobs")


def _back(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect(_next_url(request))


def _explorer_url(scope: Scope) -> str:
    """The explorer showing the same jobs, to look before confirming."""
    query = scope.query or "id:" + ",".join(scope.task_ids)
    return reverse("dashboard:jobs") + "?" + urlencode({"q": query})
