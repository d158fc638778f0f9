"""Retention: delete old finished jobs in small batches, so the table stays bounded.

Beat runs `tasks.retention.prune_jobs` (CELERY_BEAT_SCHEDULE in settings). Each rule
walks one index (status + created_at, or the partial dead-letter index) and deletes at
most `batch_size` rows per statement, each in its own short transaction: no long lock,
no full-table scan, and a pruning run can stop anywhere and resume next time.
Results in django-celery-results' table expire on their own (`result_expires`, cleaned
by Celery's `celery.backend_cleanup`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import shared_task
from django.db.models import Q
from django.utils import timezone

from tasks.conf import layer_settings
from tasks.models import (
    Batch,
    FailureTally,
    Job,
    JobStatus,
    JobTally,
    StatusTally,
    TimingTally,
)
from tasks.observations import Period

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionRule:
    label: str
    keep: timedelta
    rows: Q  # which rows the rule covers; their age is taken from created_at


def rules() -> list[RetentionRule]:
    days = layer_settings().retention_days  # every status, defaults filled in
    not_dead = Q(dead_lettered_at__isnull=True)
    result = [
        RetentionRule(status, timedelta(days=days[status]), Q(status=status) & not_dead)
        for status in (JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.REVOKED)
    ]
    result.append(
        RetentionRule(
            "DEAD_LETTER", timedelta(days=days["DEAD_LETTER"]), Q(dead_lettered_at__isnull=False)
        )
    )
    return result


def prune(
    now: datetime | None = None, batch_size: int = 1000, max_batches: int = 1000
) -> dict[str, int]:
    """Delete rows older than their rule allows; returns how many per rule."""
    now = now or timezone.now()
    deleted: dict[str, int] = {}
    for rule in rules():
        cutoff = now - rule.keep
        age = (
            Q(dead_lettered_at__lt=cutoff)
            if rule.label == "DEAD_LETTER"
            else Q(created_at__lt=cutoff)
        )
        total = 0
        for _ in range(max_batches):
            ids = list(
                Job.objects.filter(rule.rows & age).values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                break
            count = Job.objects.filter(id__in=ids).prune()
            total += count
            if len(ids) < batch_size:
                break
        deleted[rule.label] = total
    if any(deleted.values()):
        logger.info("Pruned jobs: %s", deleted)
    return deleted


#: Per-minute tallies answer the last day's questions (charts per minute over 24 hours);
#: per-hour and per-day tallies the longer ones (30-day charts, task statistics), and
#: they outlive the job rows. None depends on the job retention above.
KEEP_MINUTE_TALLIES = timedelta(days=2)
KEEP_HOUR_TALLIES = timedelta(days=400)


def prune_tallies(now: datetime) -> dict[str, int]:
    """Delete tallies past their keep; they are few, so one statement per table."""
    deleted: dict[str, int] = {}
    minutes = Q(period=Period.MINUTE, start__lt=now - KEEP_MINUTE_TALLIES)
    hours_and_days = Q(period__in=[Period.HOUR, Period.DAY], start__lt=now - KEEP_HOUR_TALLIES)
    for label, model in (
        ("JOB_TALLIES", JobTally),
        ("STATUS_TALLIES", StatusTally),
        ("TIMING_TALLIES", TimingTally),
    ):
        deleted[label] = model.objects.filter(minutes | hours_and_days).delete()[0]
    deleted["FAILURE_TALLIES"] = FailureTally.objects.filter(
        start__lt=now - KEEP_HOUR_TALLIES
    ).delete()[0]
    return deleted


def prune_batches(now: datetime) -> int:
    """Delete the batches no member of which can still be on record: started and last
    finished before the longest job retention. A younger batch keeps its counts after its
    members are pruned (the page then says how it ended, without listing them)."""
    cutoff = now - timedelta(days=max(layer_settings().retention_days.values()))
    old = Batch.objects.filter(created_at__lt=cutoff).exclude(last_finished_at__gte=cutoff)
    return old.delete()[0]


@shared_task(name="tasks.retention.prune_jobs", ignore_result=True)
def prune_jobs() -> dict[str, int]:
    """Beat's housekeeping: old jobs, then old tallies and batches."""
    now = timezone.now()
    return {**prune(now), **prune_tallies(now), "BATCHES": prune_batches(now)}
