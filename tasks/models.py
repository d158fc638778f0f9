"""The job record: one row per Celery task invocation, keyed by the task id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from tasks.exceptions import JobWriteRefused


class JobStatus(models.TextChoices):
    """Where a job is in its life. Celery's state names, plus PENDING for our outbox."""

    PENDING = "PENDING", "Pending"
    """Recorded in the caller's transaction; the message is not yet confirmed published."""
    SENT = "SENT", "Sent"
    """Published to the broker; no worker has taken it yet."""
    RECEIVED = "RECEIVED", "Received"
    """A worker holds the message (it may be waiting for its ETA or a free process)."""
    STARTED = "STARTED", "Started"
    """A worker process is running the task body."""
    RETRY = "RETRY", "Retry"
    """An attempt failed and another is scheduled (see `eta`)."""
    SUCCESS = "SUCCESS", "Success"
    """Finished; `result` holds the return value."""
    FAILURE = "FAILURE", "Failure"
    """Finished with an error; `error` and `traceback` say why."""
    REVOKED = "REVOKED", "Revoked"
    """Cancelled before or while running."""


#: Waiting for a worker: not yet published, on the broker, held by a worker for its ETA
#: or a free process, or between attempts.
QUEUED = (JobStatus.PENDING, JobStatus.SENT, JobStatus.RECEIVED, JobStatus.RETRY)


class DeadLetterResolution(models.TextChoices):
    """What an operator did with a dead letter ("" while it is still parked)."""

    REPLAYED = "replayed", "Replayed"
    PURGED = "purged", "Purged"


# Conditions of the partial indexes on Job (see Job.Meta.indexes). A query can use such an
# index only when its WHERE clause contains the condition (SQLite matches it term by
# term), so the lookups below spell it out.
# "" is left out too: a PENDING row written by `.delay()` has no root yet (its SENT
# event brings it), and moving that row out of the index later would cost a write.
NOT_OWN_CORRELATION = ~models.Q(correlation_id=models.F("task_id")) & ~models.Q(correlation_id="")
NOT_OWN_ROOT = ~models.Q(root_id=models.F("task_id")) & ~models.Q(root_id="")
IN_A_GROUP = ~models.Q(group_id="")
IS_A_RERUN = models.Q(retried_from__isnull=False)
HAS_FINGERPRINT = ~models.Q(fingerprint="")


class JobQuerySet(models.QuerySet["Job"]):
    """The questions the admin and dashboard ask (each served by an index on Job), and
    every way a row changes besides the recording service.

    Status-owned columns (status, timestamps, result, error, worker, progress, ...) are
    written only by tasks.record.service, through its upserts. The bookkeeping below is
    each a named method, and a plain `.update()` or `.delete()` raises JobWriteRefused:
    this class is the list of every write.
    """

    # --- writes: the only ones outside the recording service ---------------------------

    def update(self, **changes: Any) -> int:
        raise JobWriteRefused(f"Job rows changed outside tasks/models.py: {sorted(changes)}")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise JobWriteRefused("Job rows deleted outside tasks/models.py")

    def _write(self, **changes: Any) -> int:
        return super().update(**changes)

    def claim_for_relay(self, lease_end: datetime) -> int:
        """The relay holds these rows until `lease_end` (they are not due meanwhile)."""
        return self._write(publish_due_at=lease_end)

    def published_by_relay(self, lease_end: datetime) -> int:
        """Published: no longer due (only rows still held under this lease)."""
        return self.filter(publish_due_at=lease_end)._write(publish_due_at=None)

    def due_again(self, lease_end: datetime, due: datetime, error: str = "") -> int:
        """Given back by the relay that held them under `lease_end`, due at `due`."""
        changes: dict[str, Any] = {"publish_due_at": due}
        if error:
            changes["error"] = error[:2000]
        return self.filter(publish_due_at=lease_end)._write(**changes)

    def due_now(self, now: datetime) -> int:
        """Written with a COMMIT: due for the relay from `now`."""
        return self._write(publish_due_at=now)

    def republish_after_broker_loss(self, now: datetime, because: str) -> int:
        """The broker lost their messages: due for the relay now, which publishes them
        again from the row with the same task id (tasks.runtime.broker_recovery)."""
        return self._write(
            publish_due_at=now,
            recovered_at=now,
            recoveries=models.F("recoveries") + 1,
            recovered_because=because[:255],
        )

    def withdrawn_from_relay(self) -> int:
        """Never to be published (cancelled before the relay took them)."""
        return self._write(publish_due_at=None)

    def request_cancel(self, at: datetime) -> int:
        """An operator asked to cancel; workers honour it (tasks.runtime.cancellation)."""
        return self._write(cancel_requested_at=at)

    def resolve_dead_letters(self, resolution: str, at: datetime) -> int:
        """Replayed or purged by an operator (tasks.operations.dead_letters)."""
        return self._write(dead_letter_resolution=resolution, dead_letter_resolved_at=at)

    def link_rerun(self, original: Job) -> int:
        """These jobs run `original` again (tasks.operations.reruns)."""
        return self._write(retried_from=original)

    def prune(self) -> int:
        """Deleted for good by retention (tasks.operations.retention); how many."""
        count, _ = super().delete()
        return count

    # --- questions ----------------------------------------------------------------------

    def running(self) -> JobQuerySet:
        return self.filter(status=JobStatus.STARTED)

    def queued(self) -> JobQuerySet:
        return self.filter(status__in=QUEUED)

    def finished(self) -> JobQuerySet:
        return self.filter(status__in=[JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.REVOKED])

    def succeeded(self) -> JobQuerySet:
        return self.filter(status=JobStatus.SUCCESS)

    def failed(self) -> JobQuerySet:
        return self.filter(status=JobStatus.FAILURE)

    def dead_lettered(self) -> JobQuerySet:
        return self.filter(dead_lettered_at__isnull=False)

    def parked_dead_letters(self) -> JobQuerySet:
        """Dead letters nobody has replayed or purged yet."""
        return self.dead_lettered().filter(dead_letter_resolution="")

    def cancel_requested(self) -> JobQuerySet:
        """Cancellations that have not reached a final state yet (workers load these)."""
        return self.filter(cancel_requested_at__isnull=False).exclude(
            status__in=[JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.REVOKED]
        )

    def since(self, moment: datetime) -> JobQuerySet:
        return self.filter(created_at__gte=moment)

    def in_failure_group(self, fingerprint: str) -> JobQuerySet:
        return self.filter(HAS_FINGERPRINT, fingerprint=fingerprint)

    def named(self, name: str) -> JobQuerySet:
        return self.filter(name=name)

    def in_queue(self, queue: str) -> JobQuerySet:
        return self.filter(queue=queue)

    def correlated(self, correlation_id: str) -> JobQuerySet:
        return self.filter(correlated_with(correlation_id))

    def in_group(self, group_id: str) -> JobQuerySet:
        """A group's members, or a chord's header tasks and its body."""
        return self.filter(IN_A_GROUP, group_id=group_id)

    def family(self, root_id: str) -> JobQuerySet:
        """Every job of one workflow (a chain, group or chord and what it spawned)."""
        return self.filter(rooted_at(root_id))

    def matching_id(self, term: str) -> JobQuerySet:
        """Jobs whose task id, correlation id or root id is `term`, or named `term`
        (the admin's search box): one index per branch."""
        return self.filter(
            models.Q(task_id=term)
            | (models.Q(correlation_id=term) & NOT_OWN_CORRELATION)
            | (models.Q(root_id=term) & NOT_OWN_ROOT)
            | models.Q(name=term)
        )


def correlated_with(correlation_id: str) -> models.Q:
    """`correlation_id = X`, in the two parts the indexes serve: the job X itself (when
    it is its own correlation) and the other jobs of that correlation."""
    own = models.Q(task_id=correlation_id, correlation_id=correlation_id)
    return own | (models.Q(correlation_id=correlation_id) & NOT_OWN_CORRELATION)


def rooted_at(root_id: str) -> models.Q:
    """`root_id = X`, split like `correlated_with`: the root job and its descendants."""
    return models.Q(task_id=root_id, root_id=root_id) | (models.Q(root_id=root_id) & NOT_OWN_ROOT)


class Job(models.Model):
    """One Celery task invocation: its state written only by `tasks.record.service`, its
    bookkeeping only through the named methods of `JobQuerySet`.

    `args`, `kwargs` and `result` are the real JSON values (never Celery's truncated
    `argsrepr`), so a job can be replayed from its row.
    """

    # Unique through Meta.constraints, not `unique=True`: on PostgreSQL that would add a
    # second index (varchar_pattern_ops, for LIKE) that every insert pays for and no
    # query uses; every lookup by task id is exact.
    task_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True, default="")
    queue = models.CharField(max_length=255, blank=True, default="")
    priority = models.PositiveSmallIntegerField(null=True, blank=True)
    # NULL means "not known yet" (the row was created from an event without the message).
    args = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    kwargs = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    progress = models.PositiveSmallIntegerField(default=0)
    progress_message = models.CharField(max_length=255, blank=True, default="")
    result = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(
        default=0, help_text="Attempts that have started running."
    )
    worker = models.CharField(max_length=255, blank=True, default="")
    correlation_id = models.CharField(max_length=128, blank=True, default="")
    parent_id = models.CharField(max_length=255, blank=True, default="")
    root_id = models.CharField(max_length=255, blank=True, default="")
    group_id = models.CharField(max_length=255, blank=True, default="")
    group_index = models.PositiveIntegerField(
        null=True, blank=True, help_text="The job's position in its group or chord."
    )
    eta = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(
        null=True, blank=True, help_text="When the row was last written (visibility lag)."
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    dead_lettered_at = models.DateTimeField(null=True, blank=True)
    message = models.JSONField(
        null=True,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text=(
            "What publishing the job again needs beyond name and arguments: headers and "
            "routing options. Kept for jobs held in the database and for dead letters."
        ),
    )
    publish_due_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=(
            "Set while the job waits for the relay to publish it (`.delay()` inside a "
            "transaction); a later time is a relay's claim. Cleared once published."
        ),
    )
    cancel_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When an operator asked to cancel the job."
    )
    dead_letter_resolution = models.CharField(
        max_length=16, choices=DeadLetterResolution.choices, blank=True, default=""
    )
    dead_letter_resolved_at = models.DateTimeField(null=True, blank=True)
    recovered_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the layer last published this job again because the broker lost it.",
    )
    recoveries = models.PositiveSmallIntegerField(
        default=0, help_text="Times the layer published it again after a broker lost it."
    )
    recovered_because = models.CharField(max_length=255, blank=True, default="")
    fingerprint = models.CharField(
        max_length=40,
        blank=True,
        default="",
        help_text="The failure group of a failed job (tasks.record.fingerprint); '' otherwise.",
    )
    retried_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,  # job_retried_from below: an index of reruns only
        related_name="retries",
        help_text="The job this one re-runs (operator retry or dead-letter replay).",
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        # One permission per operator action (the admin checks them; so can views).
        permissions = [
            ("cancel_job", "Can cancel jobs"),
            ("retry_job", "Can retry failed or revoked jobs"),
            ("replay_dead_letter", "Can replay or purge dead letters"),
        ]
        # A constraint rather than `unique=True`: on PostgreSQL the latter also builds a
        # LIKE index (varchar_pattern_ops) that no query uses, a cost on every insert.
        constraints = [
            models.UniqueConstraint(fields=["task_id"], name="tasklayer_job_task_id_key")
        ]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="job_status_created"),
            models.Index(fields=["name", "-created_at"], name="job_name_created"),
            models.Index(fields=["queue", "status"], name="job_queue_status"),
            # Most jobs are their own root and correlation (top-level jobs) and in no
            # group: those rows stay out of these three indexes, which made up a third
            # of the cost of inserting a job row (measured on SQLite, docs/architecture).
            # The queryset methods above add each index's condition to their filter.
            models.Index(
                fields=["correlation_id"],
                name="job_correlation_other",
                condition=NOT_OWN_CORRELATION,
            ),
            models.Index(fields=["root_id"], name="job_root_other", condition=NOT_OWN_ROOT),
            models.Index(fields=["group_id"], name="job_group_member", condition=IN_A_GROUP),
            models.Index(fields=["retried_from"], name="job_retried_from", condition=IS_A_RERUN),
            models.Index(fields=["-created_at"], name="job_created"),
            models.Index(
                fields=["cancel_requested_at"],
                name="job_cancel_requested",
                condition=models.Q(cancel_requested_at__isnull=False),
            ),
            # Only the jobs the relay has still to publish: empty in a steady state.
            models.Index(
                fields=["publish_due_at"],
                name="job_publish_due",
                condition=models.Q(publish_due_at__isnull=False),
            ),
            # Jobs the layer published again after a broker lost them: rare, so the
            # explorer's `recovered:` finds them without reading the table.
            models.Index(
                fields=["recovered_at"],
                name="job_recovered",
                condition=models.Q(recovered_at__isnull=False),
            ),
            models.Index(
                fields=["dead_lettered_at"],
                name="job_dead_lettered",
                condition=models.Q(dead_lettered_at__isnull=False),
            ),
            # A failure group's jobs, newest first: only failed rows carry a fingerprint.
            models.Index(
                fields=["fingerprint", "-created_at"],
                name="job_failure_group",
                condition=HAS_FINGERPRINT,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name or '?'} [{self.task_id}] {self.status}"

    @property
    def runtime_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class QueuePause(models.Model):
    """A queue an operator paused: no worker consumes it until it is resumed.

    The row is the memory of the pause: a worker that starts while it exists does not
    consume the queue (tasks.runtime), and the dashboard shows the queue as paused.
    """

    queue = models.CharField(max_length=255, unique=True)
    paused_at = models.DateTimeField()
    paused_by = models.CharField(max_length=150, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.queue} paused at {self.paused_at:%Y-%m-%d %H:%M:%S}"


class JobAttempt(models.Model):
    """One attempt at running a job: when, on which worker, and how it ended.

    Written by `tasks.record.service` from the same events as the job row; the job's page
    lists them. `key` is "<task id>:<number>" so that attempts upsert in bulk like jobs.
    """

    key = models.CharField(max_length=300, unique=True)
    task_id = models.CharField(max_length=255, db_index=True)
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=JobStatus.choices)
    worker = models.CharField(max_length=255, blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When the retry after this attempt is due."
    )

    class Meta:
        ordering = ["task_id", "number"]

    def __str__(self) -> str:
        return f"{self.task_id} attempt {self.number}: {self.status}"


class OutboxMessage(models.Model):
    """A message to publish that must not depend on the broker answering right now.

    Written in the same transaction as the job's row: by `.delay()` inside a
    transaction (deleted once the commit hook has published it), for a job whose ETA is
    further away than the broker can hold it, and for a retry whose re-publish failed.
    `tasks.publish.outbox` publishes what is due; `claimed_at` is a lease, so the commit hook
    and reconcilers never publish one message twice.
    """

    task_id = models.CharField(max_length=255)  # unique: Meta.constraints (see Job)
    name = models.CharField(max_length=255)
    args = models.JSONField(encoder=DjangoJSONEncoder, default=list)
    kwargs = models.JSONField(encoder=DjangoJSONEncoder, default=dict)
    options = models.JSONField(
        encoder=DjangoJSONEncoder,
        default=dict,
        help_text="apply_async options: queue, priority, headers, retries, eta, ...",
    )
    due_at = models.DateTimeField(help_text="Publish no earlier than this.")
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Failed publish attempts.")
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["due_at"], name="outbox_due")]
        constraints = [
            models.UniqueConstraint(fields=["task_id"], name="tasklayer_outboxmessage_task_id_key")
        ]

    def __str__(self) -> str:
        return f"{self.name} [{self.task_id}] due {self.due_at:%Y-%m-%d %H:%M:%S}"


# The tables kept beside the job rows (tallies, failure groups, worker heartbeats) live in
# their own module; importing them here registers them with the app.
from tasks.observations import (  # noqa: E402
    Batch,
    BatchKind,
    BrokerLoss,
    FailureGroup,
    FailureTally,
    JobTally,
    StatusTally,
    TimingTally,
    WorkerBeat,
)

__all__ = [
    "Batch",
    "BatchKind",
    "BrokerLoss",
    "DeadLetterResolution",
    "FailureGroup",
    "FailureTally",
    "Job",
    "JobAttempt",
    "JobQuerySet",
    "JobStatus",
    "JobTally",
    "OutboxMessage",
    "StatusTally",
    "TimingTally",
    "WorkerBeat",
]
