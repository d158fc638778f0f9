"""The job admin: read-only, because job state is written only by the recording service."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from dashboard.pagination import CappedCountPaginator
from dashboard.redaction import redact, redact_message
from tasks import operations
from tasks.conf import layer_settings
from tasks.models import Job, JobAttempt, JobQuerySet, JobStatus

STATUS_COLOURS: dict[str, str] = {
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
        return [(name, name) for name in layer_settings().queues]

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
    readonly_fields = [f.name for f in Job._meta.fields] + [
        "attempt_history",
        "shown_args",
        "shown_kwargs",
        "shown_result",
        "shown_message",
    ]
    fieldsets = (
        (None, {"fields": ("task_id", "name", "status", "progress", "progress_message")}),
        ("Call", {"fields": ("shown_args", "shown_kwargs", "queue", "priority", "eta")}),
        ("Outcome", {"fields": ("shown_result", "error", "traceback", "attempts", "worker")}),
        ("Attempts", {"fields": ("attempt_history",)}),
        (
            "Dead letter and cancellation",
            {
                "fields": (
                    "dead_lettered_at",
                    "dead_letter_resolution",
                    "dead_letter_resolved_at",
                    "shown_message",
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

    actions = [
        "cancel_selected",
        "hard_cancel_selected",
        "retry_selected",
        "replay_selected_dead_letters",
        "purge_selected_dead_letters",
    ]

    # --- operator actions: each calls a tasks service, is permission-checked and logged

    @admin.action(description="Cancel selected jobs", permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._cancel(request, queryset, terminate=False)

    @admin.action(
        description="Hard-cancel selected jobs (kill the process running them)",
        permissions=["cancel"],
    )
    def hard_cancel_selected(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._cancel(request, queryset, terminate=True)

    def _cancel(self, request: HttpRequest, queryset: QuerySet[Job], terminate: bool) -> None:
        outcomes = operations.cancel_many(
            list(queryset.values_list("task_id", flat=True)),
            terminate=terminate,
            requested_by=request.user.get_username(),
        )
        jobs = {job.task_id: job for job in queryset}
        for outcome in outcomes:
            if not outcome.done_nothing:
                self.log_change(request, jobs[outcome.task_id], f"Cancel: {outcome.outcome}")
            level = messages.WARNING if outcome.done_nothing else messages.SUCCESS
            self.message_user(request, str(outcome), level)

    @admin.action(description="Retry selected jobs", permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        reruns_done = operations.retry_jobs(list(queryset.values_list("task_id", flat=True)))
        self._report_reruns(request, queryset, reruns_done, "Retried", "failed or revoked")

    @admin.action(description="Replay selected dead letters", permissions=["replay"])
    def replay_selected_dead_letters(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        replayed = operations.replay(list(queryset.values_list("task_id", flat=True)))
        self._report_reruns(request, queryset, replayed, "Replayed", "parked dead letters")

    @admin.action(description="Purge selected dead letters", permissions=["replay"])
    def purge_selected_dead_letters(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        # The admin's querysets come from Job.objects: JobQuerySets.
        parked = cast(JobQuerySet, queryset).parked_dead_letters()
        ids = list(parked.values_list("task_id", flat=True))
        purged = operations.purge(ids)
        for job in Job.objects.filter(task_id__in=ids):
            self.log_change(request, job, "Dead letter purged")
        self.message_user(request, f"Purged {purged} dead letter(s).", messages.SUCCESS)
        skipped = queryset.count() - purged
        if skipped:
            self.message_user(
                request,
                f"{skipped} selected job(s) were not parked dead letters.",
                messages.WARNING,
            )

    def _report_reruns(
        self,
        request: HttpRequest,
        queryset: QuerySet[Job],
        done: list[Any],
        verb: str,
        eligible: str,
    ) -> None:
        jobs = {job.task_id: job for job in queryset}
        for item in done:
            old_id = getattr(item, "old_job", None) or item.dead_letter
            self.log_change(request, jobs[old_id], f"{verb} as job {item.new_job}")
            self.message_user(
                request, f"{verb} {old_id} as new job {item.new_job}.", messages.SUCCESS
            )
        skipped = len(jobs) - len(done)
        if skipped:
            self.message_user(
                request,
                f"{skipped} selected job(s) left alone: only {eligible} can be {verb.lower()}.",
                messages.WARNING,
            )

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("tasklayer.cancel_job")

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("tasklayer.retry_job")

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("tasklayer.replay_dead_letter")

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
        return cast(JobQuerySet, queryset).matching_id(term), False  # from Job.objects

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
            if job.started_at is None:
                return "No attempt has started yet."
            # A first attempt that succeeded is recorded on the job row only.
            rows = format_html(
                "<tr><td>1</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td></td><td></td></tr>",
                job.status,
                job.worker,
                _time(job.started_at),
                _time(job.finished_at),
            )
        return format_html(
            '<table class="attempt-history"><thead><tr><th>#</th><th>outcome</th>'
            "<th>worker</th><th>started</th><th>finished</th><th>error</th>"
            "<th>next attempt due</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="runtime")
    # Arguments, result and message as stored, with TASKS_REDACT_KEYS masked
    # (dashboard.redaction): the admin shows personal data no more than the dashboard.

    @admin.display(description="args")
    def shown_args(self, job: Job) -> str:
        return _json(redact(job.args))

    @admin.display(description="kwargs")
    def shown_kwargs(self, job: Job) -> str:
        return _json(redact(job.kwargs))

    @admin.display(description="result")
    def shown_result(self, job: Job) -> str:
        return _json(redact(job.result))

    @admin.display(description="message")
    def shown_message(self, job: Job) -> str:
        return _json(redact_message(job.message))

    def runtime(self, job: Job) -> str:
        seconds = job.runtime_seconds
        return "" if seconds is None else f"{seconds:.3f} s"


def _json(value: Any) -> str:
    if value is None:
        return "-"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


def _time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if moment else ""


# django-celery-beat's schedule admins, with the checks their forms leave out, when the
# (optional) app is installed: its models cannot even be imported otherwise.
if operations.beat_installed():
    from dashboard import beat_admin

    beat_admin.register()
