"""The dashboard's questions: counts by status and run-time percentiles of the last hour."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard import stats
from tasks.models import Job, JobStatus

pytestmark = pytest.mark.django_db


def make(task_id: str, name: str, status: str, age: timedelta, runtime_s: float) -> None:
    created = timezone.now() - age
    Job.objects.create(
        task_id=task_id,
        name=name,
        status=status,
        created_at=created,
        started_at=created,
        finished_at=created + timedelta(seconds=runtime_s),
    )


def test_status_counts_cover_only_the_period() -> None:
    make("a", "x", JobStatus.SUCCESS, timedelta(minutes=5), 1)
    make("b", "x", JobStatus.SUCCESS, timedelta(minutes=10), 1)
    make("c", "x", JobStatus.FAILURE, timedelta(minutes=20), 1)
    make("old", "x", JobStatus.FAILURE, timedelta(hours=2), 1)
    counts = stats.status_counts(timezone.now() - timedelta(hours=1))
    assert counts == {JobStatus.SUCCESS: 2, JobStatus.FAILURE: 1}


def test_runtime_percentiles_per_task_of_succeeded_jobs() -> None:
    for i in range(1, 21):
        make(f"fast-{i}", "fast", JobStatus.SUCCESS, timedelta(minutes=1), i / 10)
    make("slow-1", "slow", JobStatus.SUCCESS, timedelta(minutes=1), 30)
    make("failed", "fast", JobStatus.FAILURE, timedelta(minutes=1), 999)
    make("old", "slow", JobStatus.SUCCESS, timedelta(hours=3), 999)
    result = stats.runtime_percentiles(timezone.now() - timedelta(hours=1))
    assert set(result) == {"fast", "slow"}
    assert result["fast"]["p50"] == pytest.approx(1.05, abs=0.06)
    assert result["fast"]["p95"] == pytest.approx(1.95, abs=0.06)
    assert result["slow"] == {"p50": pytest.approx(30), "p95": pytest.approx(30)}
