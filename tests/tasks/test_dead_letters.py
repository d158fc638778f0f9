"""Retries, attempt history and dead letters, on a real worker, broker and database."""

from __future__ import annotations

import itertools
import time
import uuid

import pytest
import redis
from celery import current_app

from demo.tasks import always_fail, flaky
from tasks import operations
from tasks.backoff import RetryPolicy
from tasks.models import DeadLetterResolution, JobAttempt, JobStatus
from tasks.runtime import dead_letter_queue
from tests.support.jobs import wait_for_job
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)


def parked_ids(client: redis.Redis | None = None, expect: str | None = None) -> list[str]:
    """Task ids of the messages in the broker's dead_letter queue (Redis or RabbitMQ).

    With `expect`, waits a little for that id: RabbitMQ dead-letters a message when the
    worker rejects it, which can be just after the job's row says FAILURE.
    """
    deadline = time.monotonic() + 10
    while True:
        ids = dead_letter_queue.peek()
        if expect is None or expect in ids or time.monotonic() > deadline:
            return ids
        time.sleep(0.1)


def wait_for_attempts(task_id: str, count: int, timeout: float = 10.0) -> list[JobAttempt]:
    deadline = time.monotonic() + timeout
    while True:
        attempts = list(JobAttempt.objects.filter(task_id=task_id).order_by("number"))
        if len(attempts) >= count and all(a.status != JobStatus.STARTED for a in attempts):
            return attempts
        if time.monotonic() > deadline:
            raise AssertionError(f"attempts of {task_id}: {attempts}")
        time.sleep(0.1)


def test_flaky_job_succeeds_on_its_third_attempt_with_history(live_worker: WorkerProcess) -> None:
    key = f"flaky-{uuid.uuid4().hex}"
    job = wait_for_job(flaky.delay(key, 2).id, timeout=40)

    assert job.status == JobStatus.SUCCESS, job.error
    assert job.attempts == 3
    assert job.result == f"{key} succeeded on attempt 3"
    assert job.dead_lettered_at is None
    attempts = wait_for_attempts(job.task_id, 3)
    assert [a.status for a in attempts] == ["RETRY", "RETRY", "SUCCESS"]
    assert [a.worker for a in attempts] == [live_worker.name] * 3
    assert all(a.started_at and a.finished_at for a in attempts)
    assert "DemoTransientError: attempt 1" in attempts[0].error
    assert "attempt 2" in attempts[1].error


def test_always_fail_is_dead_lettered_after_max_retries_plus_one_attempts(
    live_worker: WorkerProcess, redis_client: redis.Redis
) -> None:
    result = always_fail.delay("the payment API is down")
    job = wait_for_job(result.id, timeout=40)

    assert job.status == JobStatus.FAILURE
    assert job.attempts == always_fail.max_retries + 1 == 4
    assert job.dead_lettered_at is not None
    assert "DemoTransientError: the payment API is down" in job.error
    assert "Traceback" in job.traceback
    assert job.message["queue"] == "default"
    assert job.args == ["the payment API is down"]

    # The backoff between attempts stayed within the policy's bounds.
    policy: RetryPolicy = always_fail.retry_policy
    attempts = wait_for_attempts(job.task_id, 4)
    assert [a.status for a in attempts] == ["RETRY", "RETRY", "RETRY", "FAILURE"]
    for number, (attempt, following) in enumerate(itertools.pairwise(attempts)):
        planned = (attempt.next_attempt_at - attempt.finished_at).total_seconds()
        assert -0.05 <= planned <= policy.ceiling(number) + 0.05, (number, planned)
        assert following.started_at >= attempt.next_attempt_at - _clock_slack()

    # The message itself is parked on the broker's dead_letter queue.
    assert job.task_id in parked_ids(expect=job.task_id)
    assert result.state == "FAILURE"


def _clock_slack():
    from datetime import timedelta

    return timedelta(milliseconds=50)


def test_replay_runs_the_dead_letter_again_as_a_new_linked_job(
    live_worker: WorkerProcess, redis_client: redis.Redis
) -> None:
    original = wait_for_job(always_fail.delay("replay me").id, timeout=40)
    assert original.dead_lettered_at is not None

    [replayed] = operations.replay([original.task_id])

    original.refresh_from_db()
    assert original.dead_letter_resolution == DeadLetterResolution.REPLAYED
    assert original.dead_letter_resolved_at is not None
    assert original.task_id not in parked_ids(redis_client)
    new = wait_for_job(replayed.new_job, timeout=40)
    assert new.retried_from_id == original.pk
    assert new.args == ["replay me"]  # the real JSON arguments, not a repr
    assert new.name == original.name
    assert new.queue == "default"
    assert new.attempts == 4
    assert new.dead_lettered_at is not None
    # Replaying it twice does nothing the second time.
    assert operations.replay([original.task_id]) == []


def test_purge_drops_dead_letters_from_the_broker_and_marks_them(
    live_worker: WorkerProcess, redis_client: redis.Redis
) -> None:
    job = wait_for_job(always_fail.delay("purge me").id, timeout=40)
    assert job.task_id in parked_ids(expect=job.task_id)

    assert operations.purge([job.task_id]) == 1

    job.refresh_from_db()
    assert job.dead_letter_resolution == DeadLetterResolution.PURGED
    assert job.task_id not in parked_ids(redis_client)
    assert operations.purge([job.task_id]) == 0


def test_plain_shared_task_failure_is_dead_lettered(
    live_worker: WorkerProcess, redis_client: redis.Redis
) -> None:
    from plaincelery.tasks import parse_amount

    job = wait_for_job(parse_amount.delay("twelve").id)

    assert job.status == JobStatus.FAILURE
    assert job.attempts == 1
    assert job.dead_lettered_at is not None
    assert "ValueError" in job.error
    assert job.task_id in parked_ids(expect=job.task_id)


def test_a_task_can_opt_out_of_dead_lettering(
    live_worker: WorkerProcess, redis_client: redis.Redis
) -> None:
    job = wait_for_job(current_app.send_task("tests.faults.no_dead_letter").id)

    assert job.status == JobStatus.FAILURE
    assert job.dead_lettered_at is None
    assert job.task_id not in parked_ids(redis_client)


def test_unknown_task_is_dead_lettered_and_the_worker_keeps_running(
    live_worker: WorkerProcess, redis_client: redis.Redis
) -> None:
    result = current_app.send_task("billing.tasks.charge_card", args=[42], kwargs={"eur": 9})
    job = wait_for_job(result.id)

    assert job.status == JobStatus.FAILURE
    assert "NotRegistered" in job.error
    assert job.dead_lettered_at is not None
    assert job.args == [42]
    assert job.kwargs == {"eur": 9}
    assert result.id in parked_ids(expect=result.id)
    assert live_worker.is_alive()

    [replayed] = operations.replay([result.id])
    new = wait_for_job(replayed.new_job)
    assert new.retried_from_id == job.pk
    assert new.name == "billing.tasks.charge_card"


def test_soft_time_limit_is_retried_then_dead_lettered(live_worker: WorkerProcess) -> None:
    job = wait_for_job(current_app.send_task("tests.faults.soft_limited", args=[3]).id)

    assert job.status == JobStatus.FAILURE
    assert job.attempts == 2  # max_retries=1
    assert "SoftTimeLimitExceeded" in job.error
    assert job.dead_lettered_at is not None


def test_hard_time_limit_ends_the_job_dead_lettered(live_worker: WorkerProcess) -> None:
    result = current_app.send_task("tests.faults.hard_limited", args=[10])
    job = wait_for_job(result.id, timeout=30)

    assert job.status == JobStatus.FAILURE
    assert "TimeLimitExceeded" in job.error
    assert job.dead_lettered_at is not None
    assert job.args == [10]
    assert result.id in parked_ids(expect=result.id)
    assert live_worker.is_alive()
    # Not requeued (Celery requeues a timed-out message it does not acknowledge): no
    # second run starts, and the dead-letter queue holds one copy.
    time.sleep(2.5)
    job.refresh_from_db()
    assert JobAttempt.objects.filter(task_id=result.id).count() <= 1
    assert parked_ids().count(result.id) == 1


def test_operator_retry_runs_a_failed_job_again_linked_to_it(live_worker: WorkerProcess) -> None:
    from plaincelery.tasks import parse_amount
    from tasks.operations import reruns

    failed = wait_for_job(parse_amount.delay("1.5x").id)
    succeeded = wait_for_job(parse_amount.delay("2.5").id)

    [rerun] = reruns.retry_jobs([failed.task_id, succeeded.task_id])  # success: left alone

    assert rerun.old_job == failed.task_id
    new = wait_for_job(rerun.new_job)
    assert new.retried_from_id == failed.pk
    assert new.args == ["1.5x"]
    assert new.correlation_id == failed.correlation_id
    assert new.status == JobStatus.FAILURE
