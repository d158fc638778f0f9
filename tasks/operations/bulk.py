"""One action over many jobs: "retry every job that failed with this error since 10:00".

An operator picks jobs (rows, or everything a filter matches), sees a preview of how many
each action would touch and how many it would skip and why, then acts. Both steps take
the same queryset, and both count at most `limit + 1` rows through a LIMIT subquery, so
a filter matching millions of rows costs a bounded read; past the limit the action is
refused with a message saying so, instead of acting on an arbitrary part of the set.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet

from tasks import lifecycle
from tasks.exceptions import TaskLayerError
from tasks.models import Job, JobStatus
from tasks.operations.cancellation import cancel_many
from tasks.operations.dead_letters import purge, replay
from tasks.operations.reruns import RETRYABLE, retry_jobs


class BulkAction(enum.StrEnum):
    CANCEL = "cancel"
    HARD_CANCEL = "hard_cancel"
    RETRY = "retry"
    REPLAY = "replay"
    PURGE = "purge"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def past(self) -> str:
        """ "3 jobs will be <past>"."""
        return _PAST[self]

    @property
    def permission(self) -> str:
        """The permission (app_label.codename) a user needs for this action."""
        return _PERMISSIONS[self]


_LABELS = {
    BulkAction.CANCEL: "Cancel",
    BulkAction.HARD_CANCEL: "Hard-cancel (kill running)",
    BulkAction.RETRY: "Retry",
    BulkAction.REPLAY: "Replay dead letters",
    BulkAction.PURGE: "Purge dead letters",
}
_PAST = {
    BulkAction.CANCEL: "cancelled",
    BulkAction.HARD_CANCEL: "hard-cancelled",
    BulkAction.RETRY: "retried",
    BulkAction.REPLAY: "replayed",
    BulkAction.PURGE: "purged",
}
_PERMISSIONS = {
    BulkAction.CANCEL: "tasklayer.cancel_job",
    BulkAction.HARD_CANCEL: "tasklayer.cancel_job",
    BulkAction.RETRY: "tasklayer.retry_job",
    BulkAction.REPLAY: "tasklayer.replay_dead_letter",
    BulkAction.PURGE: "tasklayer.replay_dead_letter",
}

_UNFINISHED = ~Q(status__in=lifecycle.TERMINAL)
_PARKED = Q(dead_lettered_at__isnull=False, dead_letter_resolution="")
#: Per action: which jobs it acts on, and for the others, why they are skipped (the
#: first matching reason; the reasons together cover every job the action skips).
ELIGIBLE: dict[BulkAction, Q] = {
    BulkAction.CANCEL: _UNFINISHED,
    BulkAction.HARD_CANCEL: _UNFINISHED,
    BulkAction.RETRY: Q(status__in=RETRYABLE),
    BulkAction.REPLAY: _PARKED,
    BulkAction.PURGE: _PARKED,
}
SKIPPED: dict[BulkAction, tuple[tuple[str, Q], ...]] = {
    BulkAction.CANCEL: (("already finished", ~_UNFINISHED),),
    BulkAction.HARD_CANCEL: (("already finished", ~_UNFINISHED),),
    BulkAction.RETRY: (
        ("succeeded", Q(status=JobStatus.SUCCESS)),
        ("not finished yet", _UNFINISHED),
    ),
    BulkAction.REPLAY: (
        ("already replayed or purged", Q(dead_lettered_at__isnull=False) & ~_PARKED),
        ("not a dead letter", Q(dead_lettered_at__isnull=True)),
    ),
}
SKIPPED[BulkAction.PURGE] = SKIPPED[BulkAction.REPLAY]


def applies_to(action: BulkAction, job: Job) -> bool:
    """ELIGIBLE for one row already loaded (a job's page decides its buttons with it);
    tests/tasks/test_bulk_rules.py checks that the two agree on every kind of job."""
    if action in (BulkAction.CANCEL, BulkAction.HARD_CANCEL):
        return job.status not in lifecycle.TERMINAL
    if action is BulkAction.RETRY:
        return job.status in RETRYABLE
    return job.dead_lettered_at is not None and job.dead_letter_resolution == ""


class BulkLimitExceeded(TaskLayerError):
    """More jobs match than one action may touch (TASKS_BULK_ACTION_LIMIT). Nothing was
    done: narrow the filter (a time range, a queue), or act in several steps."""


@dataclass(frozen=True, slots=True)
class Tally:
    """A bounded count: `count`, or more than `count` when `more` is set."""

    count: int
    more: bool = False

    def __str__(self) -> str:
        return f"more than {self.count:,}" if self.more else f"{self.count:,}"


@dataclass(frozen=True, slots=True)
class Preview:
    action: BulkAction
    touched: Tally
    skipped: tuple[tuple[str, Tally], ...]
    limit: int

    @property
    def over_limit(self) -> bool:
        return self.touched.more or self.touched.count > self.limit


@dataclass(frozen=True)
class BulkResult:
    action: BulkAction
    done: int
    skipped: dict[str, int] = field(default_factory=dict)
    task_ids: tuple[str, ...] = ()
    #: For retry and replay: the new jobs, old id -> new id.
    new_jobs: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        text = f"{self.action.label}: {self.done:,} done"
        if self.skipped:
            reasons = ", ".join(f"{n:,} {why}" for why, n in self.skipped.items() if n)
            skipped = sum(self.skipped.values())
            text += f", {skipped:,} skipped ({reasons})" if skipped else ""
        return text


def bounded_count(jobs: QuerySet[Job], cap: int) -> Tally:
    """How many rows `jobs` holds, reading at most cap + 1 of them."""
    count = jobs.order_by()[: cap + 1].count()
    return Tally(min(count, cap), count > cap)


def preview(action: BulkAction, jobs: QuerySet[Job], limit: int) -> Preview:
    """How many of `jobs` the action would touch, and how many it would skip and why."""
    return Preview(
        action=action,
        touched=bounded_count(jobs.filter(ELIGIBLE[action]), limit),
        skipped=tuple(
            (reason, bounded_count(jobs.filter(rows), limit)) for reason, rows in SKIPPED[action]
        ),
        limit=limit,
    )


def apply(
    action: BulkAction, jobs: QuerySet[Job], limit: int, *, requested_by: str | None = None
) -> BulkResult:
    """Act on every job of `jobs` the action applies to, or on none if they are more
    than `limit` (BulkLimitExceeded)."""
    ids = list(
        jobs.filter(ELIGIBLE[action]).order_by().values_list("task_id", flat=True)[: limit + 1]
    )
    if len(ids) > limit:
        raise BulkLimitExceeded(
            f"More than {limit:,} jobs match ({action.label.lower()}): nothing was done. "
            "Narrow the filter (a time range, a task, a queue) or raise "
            "TASKS_BULK_ACTION_LIMIT."
        )
    skipped = {
        reason: bounded_count(jobs.filter(rows), limit).count for reason, rows in SKIPPED[action]
    }
    done, new_jobs = _act(action, ids, requested_by)
    if len(ids) > done:
        skipped["changed meanwhile"] = len(ids) - done
    return BulkResult(action, done, skipped, tuple(ids), new_jobs)


def _act(
    action: BulkAction, ids: list[str], requested_by: str | None
) -> tuple[int, dict[str, str]]:
    if not ids:
        return 0, {}
    if action in (BulkAction.CANCEL, BulkAction.HARD_CANCEL):
        outcomes = cancel_many(
            ids, terminate=action is BulkAction.HARD_CANCEL, requested_by=requested_by
        )
        return sum(1 for outcome in outcomes if not outcome.done_nothing), {}
    if action is BulkAction.RETRY:
        reruns = retry_jobs(ids)
        return len(reruns), {rerun.old_job: rerun.new_job for rerun in reruns}
    if action is BulkAction.REPLAY:
        replayed = replay(ids)
        return len(replayed), {item.dead_letter: item.new_job for item in replayed}
    return purge(ids), {}
