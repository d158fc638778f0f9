"""Schedules (`schedules/`): beat's schedules, their next run and last jobs; enable,
disable and run one now.

The actions are POSTs with CSRF, each checking `django_celery_beat.change_periodictask`
again (403 without it, whatever the page showed), each written to the audit log naming
who did it. A running beat (DatabaseScheduler) picks every change up by itself
(tasks.operations.schedules says how).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from dashboard import audit
from dashboard.access import User, dashboard_view
from dashboard.read.shared import shared
from tasks import operations
from tasks.exceptions import TaskLayerError

#: Enabling, disabling and running a schedule now: django-celery-beat's own permission.
CHANGE_PERMISSION = "django_celery_beat.change_periodictask"


@dashboard_view
def schedules(request: HttpRequest) -> HttpResponse:
    if not operations.beat_installed():
        return render(request, "dashboard/schedules_missing.html", {"nav": "schedules"})
    return render(request, "dashboard/schedules.html", _context(request, nav="schedules"))


@dashboard_view
def schedules_live(request: HttpRequest) -> HttpResponse:
    if not operations.beat_installed():
        raise Http404("django-celery-beat is not installed.")
    return render(request, "dashboard/fragments/schedule_rows.html", _context(request))


@dashboard_view
@require_POST
def run_now(request: HttpRequest, pk: int) -> HttpResponse:
    _require_change(request.user)
    by = request.user.get_username()
    try:
        run = operations.run_schedule_now(pk, by=by)
    except operations.ScheduleMissing as exc:
        raise Http404(str(exc)) from None
    except (TaskLayerError, ValueError) as exc:
        messages.error(request, f"Not run: {exc}")
        return _back()
    audit.record(
        request.user,
        "schedule_run_now",
        f"Ran schedule {run.schedule!r} ({run.task}) now",
        scope=f"schedule {run.schedule}",
        task_ids=[run.task_id],
    )
    messages.success(
        request,
        format_html(
            'Ran {} now: job <a href="{}">{}</a>.',
            run.schedule,
            reverse("dashboard:job", args=[run.task_id]),
            run.task_id,
        ),
    )
    return _back()


@dashboard_view
@require_POST
def set_enabled(request: HttpRequest, pk: int) -> HttpResponse:
    _require_change(request.user)
    wanted = request.POST.get("enabled")
    if wanted not in ("0", "1"):
        messages.error(request, "Say enabled=1 or enabled=0.")
        return _back()
    name = operations.schedule_name(pk)
    if name is None:
        raise Http404("No such schedule.")
    enabled = wanted == "1"
    verb = "Enabled" if enabled else "Disabled"
    if operations.set_schedule_enabled(pk, enabled):
        audit.record(
            request.user,
            "schedule_enable" if enabled else "schedule_disable",
            f"{verb} schedule {name!r}",
            scope=f"schedule {name}",
            task_ids=[],
        )
        messages.success(request, f"{verb} {name}; beat picks it up within seconds.")
    else:
        messages.info(request, f"{name} was already {verb.lower()}.")
    return _back()


def _require_change(user: User) -> None:
    if not user.has_perm(CHANGE_PERMISSION):
        raise PermissionDenied("You may not change schedules.")


def _back() -> HttpResponse:
    return HttpResponseRedirect(reverse("dashboard:schedules"))


def _page(can_change: bool) -> Any:
    # Imported here: the read model imports django-celery-beat's models, which cannot be
    # imported at all when the (optional) app is not installed.
    from dashboard.read import schedules as read

    # The buttons depend on the permission only: users alike share one answer.
    return shared(
        ("schedules", can_change),
        lambda: read.load(timezone.now(), can_change, operations.registered_tasks()),
    )


def _context(request: HttpRequest, **extra: str) -> dict[str, object]:
    return {"schedules": _page(request.user.has_perm(CHANGE_PERMISSION)), **extra}
