"""Workers (`workers/`): online, lost and stopped workers, what each runs; grow or
shrink a pool, shut a worker down (after a preview).

Every action is a POST with CSRF that checks its own permission, `change_workerbeat`
(WORKER_PERMISSION), whatever the page showed: a forged request without it gets 403.
Each is written to the audit trail (dashboard.audit, listed on Activity).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from dashboard import audit
from dashboard.access import User, dashboard_view
from dashboard.read import workers as read
from dashboard.read.shared import shared
from tasks import operations
from tasks.conf import layer_settings
from tasks.operations import PoolChange, WorkerStatus

#: Grow or shrink a pool, shut a worker down: Django's default permission on the
#: heartbeat model (no migration needed), given to operators who steer workers.
WORKER_PERMISSION = "tasklayer.change_workerbeat"


def can_control(user: User) -> bool:
    return bool(user.has_perm(WORKER_PERMISSION))


@dashboard_view
def workers(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/workers.html", _context(request, nav="workers"))


@dashboard_view
def workers_live(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/fragments/workers_rows.html", _context(request))


@dashboard_view
@require_POST
def worker_pool(request: HttpRequest, hostname: str) -> HttpResponse:
    _require_control(request)
    try:
        change = PoolChange(request.POST.get("change", ""))
    except ValueError:
        return HttpResponseBadRequest("Unknown pool change.")
    result = operations.resize_pool(hostname, change, 1)
    audit.record(
        request.user,
        f"worker_pool_{change.value}",
        f"Pool {change.value} on {hostname}: {result}",
        scope=f"worker {hostname}",
        task_ids=(),
    )
    (messages.success if result.ok else messages.error)(request, str(result))
    return HttpResponseRedirect(reverse("dashboard:workers"))


@dashboard_view
@require_POST
def worker_shutdown(request: HttpRequest, hostname: str) -> HttpResponse:
    """The first POST previews (the worker, what it runs now); the confirmed one acts."""
    _require_control(request)
    if request.POST.get("confirm") != "yes":
        state = next(
            (s for s in operations.worker_states(timezone.now()) if s.hostname == hostname), None
        )
        return render(
            request,
            "dashboard/workers_shutdown.html",
            {
                "nav": "workers",
                "worker": state,
                "hostname": hostname,
                "online": WorkerStatus.ONLINE,
            },
        )
    result = operations.shutdown_worker(hostname)
    audit.record(
        request.user,
        "worker_shutdown",
        f"Shutdown of {hostname}: {result}",
        scope=f"worker {hostname}",
        task_ids=(),
    )
    (messages.success if result.ok else messages.error)(request, str(result))
    return HttpResponseRedirect(reverse("dashboard:workers"))


def _require_control(request: HttpRequest) -> None:
    if not can_control(request.user):
        raise PermissionDenied("You may not steer workers.")


def _context(request: HttpRequest, **extra: str) -> dict[str, object]:
    flower = layer_settings().flower_url
    return {
        # The same for every user (the buttons are decided in the template).
        "workers": shared(("workers", flower), lambda: read.load(timezone.now(), flower)),
        "can_control": can_control(request.user),
        **extra,
    }
