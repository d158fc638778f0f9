"""The recording service against the real database, events applied out of order."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks.models import Job, JobStatus
from tasks.record.events import JobEvent
from tasks.record.sinks import record

pytestmark = pytest.mark.django_db


def test_first_event_creates_the_row_with_its_facts() -> None:
    record(
        JobEvent("t1", JobStatus.SENT, 0, facts={"name": "x.y", "args": [1], "queue": "default"})
    )
    job = Job.objects.get(task_id="t1")
    assert (job.name, job.args, job.queue, job.status) == ("x.y", [1], "default", JobStatus.SENT)


def test_a_late_started_does_not_overwrite_success() -> None:
    finished = timezone.now()
    record(JobEvent("t2", JobStatus.SUCCESS, 1, state={"result": 5, "finished_at": finished}))
    record(
        JobEvent("t2", JobStatus.STARTED, 1, state={"started_at": finished - timedelta(seconds=1)})
    )
    job = Job.objects.get(task_id="t2")
    assert job.status == JobStatus.SUCCESS
    assert job.result == 5
    assert job.started_at is None


def test_a_late_sent_fills_missing_facts_but_keeps_the_state() -> None:
    record(JobEvent("t3", JobStatus.STARTED, 1, state={"worker": "w1"}))
    sent_at = timezone.now()
    record(
        JobEvent(
            "t3",
            JobStatus.SENT,
            0,
            facts={"name": "a.b", "args": [1, 2], "kwargs": {}, "sent_at": sent_at, "queue": "low"},
        )
    )
    job = Job.objects.get(task_id="t3")
    assert job.status == JobStatus.STARTED
    assert (job.name, job.args, job.queue, job.sent_at) == ("a.b", [1, 2], "low", sent_at)
    assert job.worker == "w1"


def test_facts_are_never_overwritten() -> None:
    record(JobEvent("t4", JobStatus.SENT, 0, facts={"name": "first", "args": [1]}))
    record(JobEvent("t4", JobStatus.RECEIVED, 1, facts={"name": "second", "args": [2]}))
    job = Job.objects.get(task_id="t4")
    assert (job.name, job.args, job.status, job.attempts) == ("first", [1], JobStatus.RECEIVED, 1)


def test_retry_then_second_attempt_counts_attempts() -> None:
    for status, attempt in [
        (JobStatus.SENT, 0),
        (JobStatus.RECEIVED, 1),
        (JobStatus.STARTED, 1),
        (JobStatus.RETRY, 1),
        (JobStatus.RECEIVED, 2),
        (JobStatus.STARTED, 2),
    ]:
        record(JobEvent("t5", status, attempt))
    record(JobEvent("t5", JobStatus.RETRY, 1, state={"error": "late retry signal"}))
    job = Job.objects.get(task_id="t5")
    assert (job.status, job.attempts) == (JobStatus.STARTED, 2)
    assert job.error == ""


def test_created_at_is_the_earliest_event_even_when_it_arrives_late() -> None:
    sent = timezone.now()
    record(JobEvent("t6", JobStatus.RECEIVED, 1, at=sent + timedelta(milliseconds=5)))
    record(JobEvent("t6", JobStatus.SENT, 0, facts={"sent_at": sent}, at=sent))
    job = Job.objects.get(task_id="t6")
    assert job.created_at == sent == job.sent_at
    assert job.status == JobStatus.RECEIVED


def test_the_sql_precedence_agrees_with_the_python_rule() -> None:
    """The upsert's CASE and `supersedes` must decide every pair the same way."""
    from itertools import product

    from tasks.lifecycle import supersedes

    positions = list(product(JobStatus.values, range(3)))
    for n, ((old, old_attempt), (new, new_attempt)) in enumerate(product(positions, positions)):
        task_id = f"pair-{n}"
        record(JobEvent(task_id, old, old_attempt, state={"worker": "old"}))
        record(JobEvent(task_id, new, new_attempt, state={"worker": "new"}))
        job = Job.objects.get(task_id=task_id)
        expected = supersedes(new, new_attempt, old, old_attempt)
        assert (job.worker == "new") == expected, (old, old_attempt, new, new_attempt)
        assert job.status == (new if expected else old)
