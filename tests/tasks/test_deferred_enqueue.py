""".delay() in a transaction: rows written with the COMMIT, savepoints respected, each
job published once by the relay (tasks.publish: with_commit, pending_rows, relay)."""

from __future__ import annotations

import json
import uuid

import pytest
import redis
from django.db import connection, transaction

from plaincelery.tasks import word_count
from tasks.models import Job, JobStatus, OutboxMessage
from tasks.publish import relay, with_commit
from tests.support.jobs import wait_for_job

pytestmark = pytest.mark.django_db(transaction=True)


def unconsumed_queue() -> str:
    return f"deferred-{uuid.uuid4().hex[:8]}"


def queued_ids(client: redis.Redis, queue: str) -> list[str]:
    return [json.loads(raw)["headers"]["id"] for raw in client.lrange(queue, 0, -1)]


def test_the_project_database_backend_defers_the_rows_to_the_commit() -> None:
    assert with_commit.supported(connection)


def test_many_jobs_in_one_transaction_are_written_and_published_once_each(
    redis_client: redis.Redis,
) -> None:
    queue = unconsumed_queue()
    with transaction.atomic():
        results = [word_count.apply_async((f"job {i}",), queue=queue) for i in range(25)]
        # Nothing has reached the database yet, and nothing the broker.
        assert connection.unwritten_enqueues == 25
        assert redis_client.llen(queue) == 0
    ids = [result.id for result in results]
    jobs = Job.objects.filter(task_id__in=ids)
    assert jobs.count() == 25
    assert {job.args[0] for job in jobs} == {f"job {i}" for i in range(25)}
    assert {job.queue for job in jobs} == {queue}
    assert {job.status for job in jobs} == {JobStatus.PENDING}
    assert not OutboxMessage.objects.exists()  # the job row is the outbox message
    assert relay.publish_pending() == 25
    assert relay.publish_pending() == 0
    assert sorted(queued_ids(redis_client, queue)) == sorted(ids)
    assert not jobs.filter(publish_due_at__isnull=False).exists()
    assert set(jobs.values_list("status", flat=True)) == {JobStatus.SENT}


def test_a_query_after_delay_sees_the_row_in_the_same_transaction(
    redis_client: redis.Redis,
) -> None:
    queue = unconsumed_queue()
    with transaction.atomic():
        result = word_count.apply_async(("read your writes",), queue=queue)
        job = Job.objects.get(task_id=result.id)  # this query writes the rows first
        assert (job.status, job.args) == (JobStatus.PENDING, ["read your writes"])
        assert job.message["queue"] == queue
        # Not due for the relay before the commit: a relay cannot see it yet anyway.
        assert job.publish_due_at is not None
    relay.publish_pending()
    assert queued_ids(redis_client, queue) == [result.id]


def test_a_job_enqueued_in_a_rolled_back_savepoint_is_neither_written_nor_published(
    redis_client: redis.Redis,
) -> None:
    queue = unconsumed_queue()
    with transaction.atomic():
        kept = word_count.apply_async(("kept",), queue=queue)
        try:
            with transaction.atomic():
                dropped = word_count.apply_async(("dropped",), queue=queue)
                raise RuntimeError("roll the savepoint back")
        except RuntimeError:
            pass
    relay.publish_pending()
    assert queued_ids(redis_client, queue) == [kept.id]
    assert Job.objects.filter(task_id=kept.id).exists()
    assert not Job.objects.filter(task_id=dropped.id).exists()


def test_a_savepoint_rolled_back_after_its_rows_were_written_takes_them_along(
    redis_client: redis.Redis,
) -> None:
    queue = unconsumed_queue()
    with transaction.atomic():
        try:
            with transaction.atomic():
                dropped = word_count.apply_async(("dropped",), queue=queue)
                assert Job.objects.filter(task_id=dropped.id).exists()  # written now
                raise RuntimeError("roll the savepoint back")
        except RuntimeError:
            pass
        assert not Job.objects.filter(task_id=dropped.id).exists()
    assert relay.publish_pending() == 0
    assert redis_client.llen(queue) == 0


def test_a_rolled_back_transaction_leaves_nothing_pending_on_the_connection(
    redis_client: redis.Redis,
) -> None:
    queue = unconsumed_queue()
    try:
        with transaction.atomic():
            word_count.apply_async(("never",), queue=queue)
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert connection.unwritten_enqueues == 0
    assert not Job.objects.exists()
    assert relay.publish_pending() == 0
    assert redis_client.llen(queue) == 0


def test_a_job_written_with_the_commit_runs_to_success(live_worker: object) -> None:
    with transaction.atomic():
        result = word_count.delay("two words")
    job = wait_for_job(result.id)
    assert (job.status, job.result) == (JobStatus.SUCCESS, 2)
    assert result.get(timeout=10) == 2
