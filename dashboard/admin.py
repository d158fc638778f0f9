"""The job admin: read-only, because job state is written only by the recording service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from dashboard.pagination import CappedCountPaginator
from tasks.models import Job, JobAttempt, JobStatus

STATUS_COLOURS = {
    JobStatus.PENDING: "#757575",
    JobStatus.SENT: "#546e7a",
    JobStatus.RECEIVED: "#0277bd",
    JobStatus.STARTED: "#1565c0",
    JobStatus.RETRY: "#ef6c00",
    JobStatus.SUCCESS: "#2e7d32",
    JobStatus.FAILURE: "#c62828",
    JobStatus.REVOKED: "#6a1b9a",
}


class QueueFilter(admin.SimpleListFilter):
    """The configured queues, not SELECT DISTINCT over every row of the table."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in settings.TASKS_QUEUES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        value = self.value()
        return queryset.filter(queue=value) if value else queryset


class DeadLetteredFilter(admin.SimpleListFilter):
    title = "dead-lettered"
    parameter_name = "dead_lettered"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        if self.value() == "yes":
            return queryset.filter(dead_lettered_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(dead_lettered_at__isnull=True)
        return queryset


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "task_id",
        "name",
        "status_badge",
        "progress_bar",
        "queue",
        "attempts",
        "worker",
        "created_at",
        "runtime",
    )
    list_filter = ("status", QueueFilter, DeadLetteredFilter, "created_at")
    # Exact matches only, each served by an index (see get_search_results).
    search_fields = ("=task_id", "=correlation_id", "=root_id", "=name")
    search_help_text = "A task id, correlation id, root id or exact task name."
    paginator = CappedCountPaginator
    ordering = ("-created_at",)
    list_per_page = 50
    # Avoid COUNT(*) over the whole table on every page load.
    show_full_result_count = False
    readonly_fields = [f.name for f in Job._meta.fields] + ["attempt_history"]
    fieldsets = (
        (None, {"fields": ("task_id", "name", "status", "progress", "progress_message")}),
        ("Call", {"fields": ("args", "kwargs", "queue", "priority", "eta")}),
        ("Outcome", {"fields": ("result", "error", "traceback", "attempts", "worker")}),
        ("Attempts", {"fields": ("attempt_history",)}),
        (
            "Dead letter and cancellation",
            {
                "fields": (
                    "dead_lettered_at",
                    "dead_letter_resolution",
                    "dead_letter_resolved_at",
                    "message",
                    "cancel_requested_at",
                )
            },
        ),
        (
            "Lineage",
            {"fields": ("correlation_id", "parent_id", "root_id", "group_id", "retried_from")},
        ),
        (
            "Timing",
            {"fields": ("created_at", "sent_at", "started_at", "finished_at", "updated_at")},
        ),
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        """One term, matched exactly against each id column and the task name.

        Django's default splits the term on spaces and ORs `icontains` lookups, which on
        a large table means a scan of every row.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        matches = Q(task_id=term) | Q(correlation_id=term) | Q(root_id=term) | Q(name=term)
        return queryset.filter(matches), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        # Rows are history; retention prunes them, operators do not.
        return False

    @admin.display(description="status", ordering="status")
    def status_badge(self, job: Job) -> str:
        return format_html(
            '<span class="job-status" style="color:#fff;background:{};padding:1px 6px;'
            'border-radius:3px">{}</span>',
            STATUS_COLOURS.get(job.status, "#757575"),
            job.status,
        )

    @admin.display(description="progress", ordering="progress")
    def progress_bar(self, job: Job) -> str:
        return format_html(
            '<progress value="{}" max="100" title="{}">{}%</progress>',
            job.progress,
            job.progress_message,
            job.progress,
        )

    @admin.display(description="history")
    def attempt_history(self, job: Job) -> str:
        """Each attempt: when, on which worker, how it ended (escaped: errors are user text)."""
        attempts = JobAttempt.objects.filter(task_id=job.task_id).order_by("number")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    attempt.number,
                    attempt.status,
                    attempt.worker,
                    _time(attempt.started_at),
                    _time(attempt.finished_at),
                    attempt.error,
                    _time(attempt.next_attempt_at),
                )
                for attempt in attempts
            ),
        )
        if not rows:
            return "No attempt has started yet."
        return format_html(
            '<table class="attempt-history"><thead><tr><th>#</th><th>outcome</th>'
            "<th>worker</th><th>started</th><th>finished</th><th>error</th>"
            "<th>next attempt due</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="runtime")
    def runtime(self, job: Job) -> str:
        seconds = job.runtime_seconds
        return "" if seconds is None else f"{seconds:.3f} s"


def _time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if moment else ""
