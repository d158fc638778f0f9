"""Tallies and failure groups kept by the recording service, against the real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks.models import (
    FailureGroup,
    FailureTally,
    Job,
    JobStatus,
    JobTally,
    StatusTally,
    TimingTally,
)
from tasks.observations import Measure, Period
from tasks.record.events import JobEvent
from tasks.record.service import write
from tasks.record.tallies import bucket_of

pytestmark = pytest.mark.django_db

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/billing/jobs.py", line 42, in charge\n'
    "    raise TimeoutError('slow')\n"
    "TimeoutError: slow\n"
)


def _sent(task_id: str, at: object, name: str = "billing.charge") -> JobEvent:
    return JobEvent(
        task_id, JobStatus.SENT, 0, facts={"name": name, "queue": "high", "sent_at": at}
    )


def test_a_finished_job_is_counted_once_per_minute_and_hour_with_its_times() -> None:
    now = timezone.now().replace(second=30, microsecond=0)
    write([_sent("a1", now - timedelta(seconds=3))], [])
    done = JobEvent(
        "a1",
        JobStatus.SUCCESS,
        1,
        state={"started_at": now - timedelta(seconds=1), "finished_at": now},
    )
    write([done], [])
    write([done], [])  # redelivered: counts nothing more

    minute = JobTally.objects.get(period=Period.MINUTE)
    hour = JobTally.objects.get(period=Period.HOUR)
    for tally in (minute, hour):
        assert (tally.name, tally.queue, tally.status, tally.count) == (
            "billing.charge",
            "high",
            JobStatus.SUCCESS,
            1,
        )
        assert (tally.run_ms_total, tally.run_count) == (1000, 1)
        assert (tally.wait_ms_total, tally.wait_count) == (2000, 1)
    assert minute.start == now.replace(second=0)
    assert hour.start == now.replace(minute=0, second=0)
    run = TimingTally.objects.get(period=Period.HOUR, measure=Measure.RUN)
    assert (run.bucket, run.count) == (bucket_of(1000), 1)
    day = JobTally.objects.get(period=Period.DAY)
    assert (day.start, day.count) == (now.replace(hour=0, minute=0, second=0), 1)
    totals = {(t.period, t.status): t.count for t in StatusTally.objects.all()}
    assert totals == {(period, JobStatus.SUCCESS): 1 for period in Period.values}


def test_many_jobs_in_one_batch_add_up() -> None:
    now = timezone.now()
    events = [_sent(f"b{i}", now) for i in range(5)]
    events += [
        JobEvent(
            f"b{i}",
            JobStatus.SUCCESS if i % 2 else JobStatus.REVOKED,
            1,
            state={"finished_at": now},
        )
        for i in range(5)
    ]
    write(events, [])
    counts = {t.status: t.count for t in JobTally.objects.filter(period=Period.MINUTE)}
    assert counts == {JobStatus.SUCCESS: 2, JobStatus.REVOKED: 3}


def test_failures_are_grouped_and_the_job_row_carries_its_group() -> None:
    now = timezone.now()
    for i in range(3):
        write([_sent(f"f{i}", now)], [])
        write(
            [
                JobEvent(
                    f"f{i}",
                    JobStatus.FAILURE,
                    1,
                    state={
                        "finished_at": now + timedelta(seconds=i),
                        "error": f"TimeoutError: slow {i}",
                        "traceback": TRACEBACK.replace("line 42", f"line {40 + i}"),
                    },
                )
            ],
            [],
        )
    group = FailureGroup.objects.get()
    assert (group.name, group.exception, group.frame, group.count) == (
        "billing.charge",
        "TimeoutError",
        "billing/jobs.py:charge",
        3,
    )
    assert group.sample_task_id == "f2"  # the latest failure is the sample
    assert group.first_seen == now
    assert group.last_seen == now + timedelta(seconds=2)
    assert set(Job.objects.values_list("fingerprint", flat=True)) == {group.fingerprint}
    assert (
        list(Job.objects.in_failure_group(group.fingerprint).values_list("task_id", flat=True))
        != []
    )
    tally = FailureTally.objects.get()
    assert (tally.fingerprint, tally.queue, tally.count) == (group.fingerprint, "high", 3)


def test_a_job_that_succeeds_carries_no_fingerprint() -> None:
    write([_sent("s1", timezone.now()), JobEvent("s1", JobStatus.SUCCESS, 1)], [])
    assert Job.objects.get(task_id="s1").fingerprint == ""
    assert not FailureGroup.objects.exists()


def test_retention_prunes_old_tallies_only_and_leaves_job_tallies_of_pruned_jobs() -> None:
    from tasks.operations.retention import prune_jobs

    now = timezone.now()

    def tally(period: str, age: timedelta, name: str) -> None:
        JobTally.objects.create(
            period=period, start=now - age, name=name, queue="q", status=JobStatus.SUCCESS, count=1
        )

    tally(Period.MINUTE, timedelta(days=3), "old-minute")
    tally(Period.MINUTE, timedelta(hours=3), "recent-minute")
    tally(Period.HOUR, timedelta(days=401), "old-hour")
    tally(Period.HOUR, timedelta(days=40), "hour-past-job-retention")
    deleted = prune_jobs()
    assert deleted["JOB_TALLIES"] == 2
    assert set(JobTally.objects.values_list("name", flat=True)) == {
        "recent-minute",
        "hour-past-job-retention",
    }
