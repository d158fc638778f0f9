"""Queues and backpressure: routing and priority reach the message and the row; a full
queue refuses new jobs with QueueFull and records nothing."""

from __future__ import annotations

import uuid

import pytest
import redis
from django.db import transaction
from django.test import override_settings

from tasks.exceptions import QueueFull
from tasks.models import Job, JobStatus, OutboxMessage
from tasks.publish import relay
from tests.faults import count_run, routed_high
from tests.support.broker import clear_queue, queued_messages

pytestmark = pytest.mark.django_db(transaction=True)


def unconsumed_queue() -> str:
    return f"limited-{uuid.uuid4().hex[:8]}"


def test_task_queue_option_and_priority_reach_the_message_and_the_row(
    redis_client: redis.Redis,
) -> None:
    clear_queue(redis_client, "high")  # no test worker consumes `high`
    try:
        now = routed_high.apply_async((1,), priority=5)
        with transaction.atomic():
            later = routed_high.apply_async((2,), priority=5)
            pending = Job.objects.get(task_id=later.id)
            assert (pending.status, pending.queue, pending.priority) == (
                JobStatus.PENDING,
                "high",
                5,
            )
            assert pending.message["priority"] == 5
        relay.publish_pending()
        messages = {m["headers"]["id"]: m for m in queued_messages(redis_client, "high")}
        assert set(messages) == {now.id, later.id}
        for message in messages.values():
            assert message["properties"]["priority"] == 5
            assert message["properties"]["delivery_info"]["routing_key"] == "high"
        for result in (now, later):
            job = Job.objects.get(task_id=result.id)
            assert (job.status, job.queue, job.priority) == (JobStatus.SENT, "high", 5)
    finally:
        clear_queue(redis_client, "high")


def test_full_queue_refuses_new_jobs_and_records_nothing(redis_client: redis.Redis) -> None:
    queue = unconsumed_queue()
    with override_settings(TASKS_QUEUE_MAX_LENGTH={queue: 3}, TASKS_QUEUE_DEPTH_CACHE=0):
        count_run.apply_async(("a",), queue=queue)
        count_run.apply_async(("b",), queue=queue, priority=9)  # a priority sub-list
        with transaction.atomic():
            count_run.apply_async(("c",), queue=queue)
        # "c" waits for the relay: it counts against the limit all the same.
        assert len(queued_messages(redis_client, queue)) == 2
        with pytest.raises(QueueFull, match=f"Queue '{queue}' holds 3 messages"):
            count_run.apply_async(("refused",), queue=queue)
        assert relay.publish_pending() == 1
        assert len(queued_messages(redis_client, queue)) == 3

        with pytest.raises(QueueFull, match=f"Queue '{queue}' holds 3 messages"):
            count_run.apply_async(("refused",), queue=queue)
        with pytest.raises(QueueFull), transaction.atomic():
            count_run.apply_async(("refused in a transaction",), queue=queue)
        assert Job.objects.filter(queue=queue).count() == 3
        assert relay.publish_pending() == 0
        assert not OutboxMessage.objects.exists()
        assert len(queued_messages(redis_client, queue)) == 3

        # Other queues are not limited; a queue with room accepts again.
        count_run.apply_async(("elsewhere",), queue=unconsumed_queue())
        redis_client.lpop(queue)
        count_run.apply_async(("after a worker took one",), queue=queue)
        assert len(queued_messages(redis_client, queue)) == 3


def test_cached_depth_counts_this_processes_own_publishes(redis_client: redis.Redis) -> None:
    queue = unconsumed_queue()
    with override_settings(TASKS_QUEUE_MAX_LENGTH={queue: 2}, TASKS_QUEUE_DEPTH_CACHE=60):
        count_run.apply_async(("1",), queue=queue)  # measures 0, counts 1
        count_run.apply_async(("2",), queue=queue)  # cached: 1, counts 2
        with pytest.raises(QueueFull):
            count_run.apply_async(("3",), queue=queue)  # cached: 2, no round trip
    assert len(queued_messages(redis_client, queue)) == 2


def test_retries_are_never_refused_by_a_full_queue(redis_client: redis.Redis) -> None:
    queue = unconsumed_queue()
    with override_settings(TASKS_QUEUE_MAX_LENGTH={queue: 1}, TASKS_QUEUE_DEPTH_CACHE=0):
        count_run.apply_async(("first",), queue=queue)
        task_id = uuid.uuid4().hex
        count_run.apply_async(("retry",), queue=queue, task_id=task_id, retries=1)
    assert len(queued_messages(redis_client, queue)) == 2
