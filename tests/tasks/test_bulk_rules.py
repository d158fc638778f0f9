"""The bulk actions' rule, as SQL (ELIGIBLE, for "all matching") and in Python
(applies_to, for one loaded row), agree on every kind of job."""

from __future__ import annotations

import itertools

import pytest
from django.utils import timezone

from tasks.models import DeadLetterResolution, Job, JobStatus
from tasks.operations.bulk import ELIGIBLE, SKIPPED, BulkAction, applies_to
from tasks.record.events import JobEvent
from tasks.record.service import write

pytestmark = pytest.mark.django_db

KINDS = list(
    itertools.product(
        JobStatus.values,
        (False, True),
        ("", DeadLetterResolution.REPLAYED, DeadLetterResolution.PURGED),
    )
)


def _make_jobs() -> list[Job]:
    now = timezone.now()
    for n, (status, dead, resolution) in enumerate(KINDS):
        state = {"dead_lettered_at": now} if dead else {}
        write([JobEvent(f"k{n}", status, 1, facts={"name": "demo.job"}, state=state)], [])
        if resolution:
            Job.objects.filter(task_id=f"k{n}").resolve_dead_letters(resolution, now)
    return list(Job.objects.all())


def test_the_sql_and_python_rules_pick_the_same_jobs_and_skips_cover_the_rest() -> None:
    jobs = _make_jobs()
    for action in BulkAction:
        in_sql = set(Job.objects.filter(ELIGIBLE[action]).values_list("task_id", flat=True))
        in_python = {job.task_id for job in jobs if applies_to(action, job)}
        assert in_sql == in_python, action
        skipped: set[str] = set()
        for _, rows in SKIPPED[action]:
            skipped |= set(Job.objects.filter(rows).values_list("task_id", flat=True))
        assert skipped | in_sql == {job.task_id for job in jobs}, action
        assert not skipped & in_sql, action
