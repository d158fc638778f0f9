"""dashboard.stats, the two questions bench.scale times, answered by the read models:
jobs by status and run-time percentiles since a moment."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard import stats
from tasks.models import JobStatus
from tests.dashboard.test_overview import finish, in_state

pytestmark = pytest.mark.django_db


def test_status_counts_cover_only_the_period() -> None:
    now = timezone.now()
    finish("a", JobStatus.SUCCESS, now - timedelta(minutes=5))
    finish("b", JobStatus.SUCCESS, now - timedelta(minutes=10))
    finish("c", JobStatus.FAILURE, now - timedelta(minutes=20))
    finish("old", JobStatus.FAILURE, now - timedelta(hours=2))
    in_state("running", JobStatus.STARTED, now - timedelta(minutes=3))
    counts = stats.status_counts(now - timedelta(hours=1))
    assert counts == {JobStatus.SUCCESS: 2, JobStatus.FAILURE: 1, JobStatus.STARTED: 1}


def test_runtime_percentiles_per_task() -> None:
    now = timezone.now()
    for i in range(20):
        finish(
            f"fast-{i}",
            JobStatus.SUCCESS,
            now - timedelta(minutes=1),
            name="fast",
            run=timedelta(milliseconds=200),
        )
    finish(
        "slow-1",
        JobStatus.SUCCESS,
        now - timedelta(minutes=1),
        name="slow",
        run=timedelta(seconds=30),
    )
    finish(
        "old", JobStatus.SUCCESS, now - timedelta(hours=3), name="slow", run=timedelta(seconds=999)
    )
    result = stats.runtime_percentiles(now - timedelta(hours=1))
    assert set(result) == {"fast", "slow"}
    # Estimates inside the histogram bucket (100, 250] ms, capped by the max (200 ms).
    assert result["fast"]["p50"] == pytest.approx(0.15)
    assert result["fast"]["p95"] == pytest.approx(0.195)
    # One job in (10 s, 30 s]: the max closes the bucket at 30 s.
    assert result["slow"]["p50"] == pytest.approx(20)
    assert result["slow"]["p95"] == pytest.approx(29)
