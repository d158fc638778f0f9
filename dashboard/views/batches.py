"""Batches (`batches/`): every group and chord, how far it has got, its items as CSV,
and "cancel the rest" (preview, confirm, audit; `tasklayer.cancel_job`)."""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from dashboard import audit
from dashboard.access import dashboard_view, require_action
from dashboard.read import batches as read
from dashboard.read.shared import shared
from tasks.conf import layer_settings
from tasks.operations import BulkAction, BulkLimitExceeded, cancel_rest, cancel_rest_preview

#: Seconds between two redraws of a batch's progress chart (a grouped read of its rows).
CHART_EVERY = 30


@dashboard_view
def batch_list(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/batches.html", {"nav": "batches", **_list(request)})


@dashboard_view
def batch_list_live(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/fragments/batch_rows.html", _list(request))


def _list(request: HttpRequest) -> dict[str, object]:
    before = request.GET.get("before", "")[:80]
    return {"page": shared(("batches", before), lambda: read.newest(before)), "before": before}


@dashboard_view
def batch_detail(request: HttpRequest, group_id: str) -> HttpResponse:
    batch = _found(group_id)
    context = _batch(batch)
    context.update(
        nav="batches",
        chart=read.progress_chart(batch),
        chart_every=CHART_EVERY,
        can_cancel=request.user.has_perm(BulkAction.CANCEL.permission),
    )
    return render(request, "dashboard/batch.html", context)


@dashboard_view
def batch_live(request: HttpRequest, group_id: str) -> HttpResponse:
    if request.GET.get("part") == "chart":
        batch = _found(group_id)
        chart = shared(("batch-chart", group_id), lambda: read.progress_chart(batch))
        return render(request, "dashboard/fragments/batch_chart.html", {"chart": chart})
    context = _batch(_found(group_id))
    context["can_cancel"] = request.user.has_perm(BulkAction.CANCEL.permission)
    return render(request, "dashboard/fragments/batch_live.html", context)


def _found(group_id: str) -> read.BatchView:
    batch = shared(("batch", group_id), lambda: read.one(group_id))
    if batch is None:
        raise Http404("No batch with this group id is recorded.")
    return batch


def _batch(batch: read.BatchView) -> dict[str, object]:
    group_id = batch.group_id
    return {
        "batch": batch,
        "callback": shared(("batch-callback", group_id), lambda: read.callback(batch)),
        "failed_members": shared(("batch-failed", group_id), lambda: read.failed_members(batch)),
    }


@dashboard_view
def batch_export(request: HttpRequest, group_id: str) -> StreamingHttpResponse:
    _found(group_id)
    response = StreamingHttpResponse(
        read.csv_lines(group_id, layer_settings().export_limit),
        content_type="text/csv; charset=utf-8",
    )
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="batch-{stamp}.csv"'
    return response


@dashboard_view
@require_POST
def batch_cancel(request: HttpRequest, group_id: str) -> HttpResponse:
    """POST without `confirm`: the preview (how many would be cancelled, how many are
    finished); with `confirm`: cancel them, audit, and back to the batch's page. Both
    check the permission: a forged POST without it gets 403."""
    require_action(request.user, BulkAction.CANCEL)
    batch = _found(group_id)
    back = reverse("dashboard:batch", args=[group_id])
    if not request.POST.get("confirm"):
        return render(
            request,
            "dashboard/batch_cancel.html",
            {"nav": "batches", "batch": batch, "preview": cancel_rest_preview(group_id)},
        )
    try:
        result = cancel_rest(group_id, by=request.user.get_username())
    except BulkLimitExceeded as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(back)
    summary = f"Cancel the rest of batch {group_id}: {result.done:,} cancelled"
    finished = sum(result.skipped.values())
    if finished:
        summary += f", {finished:,} finished already"
    audit.record(
        request.user,
        "cancel_rest",
        summary,
        scope=f"batch:{group_id}",
        task_ids=result.task_ids,
    )
    messages.success(request, summary + ".")
    return HttpResponseRedirect(back)
