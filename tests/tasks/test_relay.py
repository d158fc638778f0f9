"""The relay: jobs committed in transactions are published once each, by the relays of
the workers that consume their queue, also when relays race, die or meet a cancel.

Real Redis, the real database; `relay.publish_pending()` is the pass every worker's
relay makes in a loop (tasks.publish.relay).
"""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from django.db import transaction
from django.test import override_settings

from tasks import operations
from tasks.models import Job, JobStatus
from tasks.publish import relay
from tests.faults import count_run
from tests.support.broker import queued_messages
from tests.support.concurrency import in_threads

pytestmark = pytest.mark.django_db(transaction=True)


def unconsumed_queue() -> str:
    return f"relay-{uuid.uuid4().hex[:8]}"


def queued_ids(client: redis.Redis, queue: str) -> list[str]:
    return [message["headers"]["id"] for message in queued_messages(client, queue)]


def test_relays_racing_over_the_same_committed_jobs_publish_each_once(
    redis_client: redis.Redis,
) -> None:
    queue = unconsumed_queue()
    with transaction.atomic():
        ids = [count_run.apply_async((f"race {i}",), queue=queue).id for i in range(40)]
    published = in_threads(4, relay.publish_pending)

    assert sum(published) == 40  # type: ignore[arg-type]
    messages = queued_messages(redis_client, queue)
    assert sorted(message["headers"]["id"] for message in messages) == sorted(ids)
    assert not Job.objects.filter(publish_due_at__isnull=False).exists()


@override_settings(TASKS_OUTBOX_LEASE=1)
def test_jobs_claimed_by_a_relay_that_died_are_published_once_its_lease_ends(
    redis_client: redis.Redis,
) -> None:
    queue = unconsumed_queue()
    with transaction.atomic():
        result = count_run.apply_async(("orphaned claim",), queue=queue)
    claimed = relay._claim(relay.BATCH)  # a relay that claimed, then died
    assert claimed is not None
    assert [row["task_id"] for row in claimed[1]] == [result.id]
    assert relay.publish_pending() == 0  # held by the dead relay's lease
    time.sleep(1.2)  # longer than the lease
    assert relay.publish_pending() == 1
    assert [m["headers"]["id"] for m in queued_messages(redis_client, queue)] == [result.id]


def test_a_job_cancelled_while_it_waits_for_the_relay_is_never_published(
    redis_client: redis.Redis,
) -> None:
    queue = unconsumed_queue()
    with transaction.atomic():
        result = count_run.apply_async(("cancelled",), queue=queue)
    (outcome,) = operations.cancel_many([result.id])
    assert outcome.outcome == operations.Outcome.NOT_STARTED
    assert relay.publish_pending() == 0
    assert redis_client.llen(queue) == 0
    job = Job.objects.get(task_id=result.id)
    assert (job.status, job.publish_due_at) == (JobStatus.REVOKED, None)


def test_a_relay_publishes_only_the_jobs_of_its_queues(redis_client: redis.Redis) -> None:
    mine, other = unconsumed_queue(), unconsumed_queue()
    with transaction.atomic():
        kept = count_run.apply_async(("mine",), queue=mine)
        left = count_run.apply_async(("other",), queue=other)
    assert relay.publish_pending(queues=[mine]) == 1
    assert queued_ids(redis_client, mine) == [kept.id]
    assert redis_client.llen(other) == 0
    assert Job.objects.get(task_id=left.id).publish_due_at is not None
    assert relay.publish_pending(queues=[other]) == 1
    assert queued_ids(redis_client, other) == [left.id]
