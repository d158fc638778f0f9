"""Queues (`queues/`): depth, age and rates per queue; pause, resume, purge.

Reading is tasks.operations.queue_states(); every action is a POST that checks its
permission again (403 without it) and is written to the audit log. Purge shows the
count first (`queues/<name>/purge/`, GET) and acts on the confirming POST.
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from dashboard import audit
from dashboard.access import User, dashboard_view
from dashboard.read import queues as read
from tasks.operations import (
    QueueActionRefused,
    pause_queue,
    purge_preview,
    purge_queue,
    resume_queue,
)

logger = logging.getLogger(__name__)


def _can_change(user: User) -> bool:
    return bool(user.has_perm(read.CHANGE_PERMISSION))


def _require_change(user: User) -> None:
    if not _can_change(user):
        raise PermissionDenied("You may not pause, resume or purge queues.")


@dashboard_view
def queues(request: HttpRequest) -> HttpResponse:
    context = {"queues": read.load(_can_change(request.user)), "nav": "queues"}
    return render(request, "dashboard/queues.html", context)


@dashboard_view
def queues_live(request: HttpRequest) -> HttpResponse:
    context = {"queues": read.load(_can_change(request.user))}
    return render(request, "dashboard/fragments/queues_live.html", context)


@dashboard_view
@require_POST
def pause(request: HttpRequest, name: str) -> HttpResponse:
    _require_change(request.user)
    pause_queue(name, by=request.user.get_username())
    audit.record(
        request.user, "pause_queue", f"Paused queue {name}", scope=f"queue:{name}", task_ids=[]
    )
    messages.success(request, f"Queue {name} paused: no worker takes its jobs until resumed.")
    return redirect("dashboard:queues")


@dashboard_view
@require_POST
def resume(request: HttpRequest, name: str) -> HttpResponse:
    _require_change(request.user)
    resume_queue(name, by=request.user.get_username())
    audit.record(
        request.user, "resume_queue", f"Resumed queue {name}", scope=f"queue:{name}", task_ids=[]
    )
    messages.success(request, f"Queue {name} resumed: its workers consume it again.")
    return redirect("dashboard:queues")


@dashboard_view
def purge(request: HttpRequest, name: str) -> HttpResponse:
    """GET: how many messages a purge would delete. POST: delete them."""
    _require_change(request.user)
    try:
        if request.method != "POST":
            context = {"name": name, "count": purge_preview(name), "jobs_url": read.jobs_url(name)}
            return render(request, "dashboard/queue_purge.html", context)
        done = purge_queue(name, by=request.user.get_username())
    except QueueActionRefused as refused:
        messages.error(request, str(refused))
        return redirect("dashboard:queues")
    except Exception:
        logger.exception("Purging queue %s failed", name)
        messages.error(request, f"Could not purge queue {name}: the broker did not answer.")
        return redirect("dashboard:queues")
    summary = (
        f"Purged queue {name}: {done.count} message{'s' if done.count != 1 else ''} deleted, "
        f"{done.revoked} job{'s' if done.revoked != 1 else ''} marked revoked"
    )
    audit.record(
        request.user, "purge_queue", summary, scope=f"queue:{name}", task_ids=list(done.task_ids)
    )
    messages.success(request, summary + ".")
    return redirect("dashboard:queues")
