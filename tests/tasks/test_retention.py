"""Retention deletes old finished jobs per status, in batches, and keeps the rest."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from celery import Celery
from django.utils import timezone

from tasks.models import Batch, Job, JobStatus
from tasks.operations.retention import prune, prune_batches

pytestmark = pytest.mark.django_db


def make_job(
    task_id: str, status: str, age_days: float, dead_letter_age: float | None = None
) -> None:
    now = timezone.now()
    Job.objects.create(
        task_id=task_id,
        status=status,
        created_at=now - timedelta(days=age_days),
        dead_lettered_at=None if dead_letter_age is None else now - timedelta(days=dead_letter_age),
    )


def test_each_status_is_kept_for_its_own_period() -> None:
    make_job("old-success", JobStatus.SUCCESS, 8)
    make_job("new-success", JobStatus.SUCCESS, 6)
    make_job("old-failure", JobStatus.FAILURE, 31)
    make_job("recent-failure", JobStatus.FAILURE, 8)
    make_job("old-revoked", JobStatus.REVOKED, 31)
    make_job("old-dead-letter", JobStatus.FAILURE, 100, dead_letter_age=91)
    make_job("kept-dead-letter", JobStatus.FAILURE, 100, dead_letter_age=40)
    make_job("old-but-running", JobStatus.STARTED, 100)
    make_job("old-but-queued", JobStatus.SENT, 100)

    deleted = prune()

    assert deleted == {"SUCCESS": 1, "FAILURE": 1, "REVOKED": 1, "DEAD_LETTER": 1}
    assert set(Job.objects.values_list("task_id", flat=True)) == {
        "new-success",
        "recent-failure",
        "kept-dead-letter",
        "old-but-running",
        "old-but-queued",
    }


def test_pruning_goes_in_small_batches_until_done() -> None:
    for i in range(25):
        make_job(f"s{i}", JobStatus.SUCCESS, 10)
    assert prune(batch_size=4)["SUCCESS"] == 25
    assert not Job.objects.exists()


def test_a_run_can_stop_after_a_bounded_number_of_batches_and_resume() -> None:
    for i in range(10):
        make_job(f"s{i}", JobStatus.SUCCESS, 10)
    assert prune(batch_size=3, max_batches=2)["SUCCESS"] == 6
    assert prune(batch_size=3)["SUCCESS"] == 4


def test_retention_and_the_reconciler_are_scheduled_in_beat_by_the_layer(
    celery_app: Celery,
) -> None:
    scheduled = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    assert {"tasks.retention.prune_jobs", "tasks.outbox.publish_due"} <= scheduled


def test_a_batch_is_deleted_once_its_members_are_past_every_retention(settings: Any) -> None:
    settings.TASKS_RETENTION_DAYS = {"SUCCESS": 1, "FAILURE": 1, "REVOKED": 1, "DEAD_LETTER": 10}
    now = timezone.now()

    def batch(group_id: str, started_days: float, finished_days: float | None) -> None:
        Batch.objects.create(
            group_id=group_id,
            created_at=now - timedelta(days=started_days),
            last_finished_at=None if finished_days is None else now - timedelta(days=finished_days),
        )

    batch("old", 12, 11)  # past the longest retention (10 days): its members are gone
    batch("never-finished", 12, None)
    batch("long-running", 12, 3)  # a member finished 3 days ago may still be a dead letter
    batch("young", 2, 1)

    assert prune_batches(now) == 2
    assert set(Batch.objects.values_list("group_id", flat=True)) == {"long-running", "young"}
