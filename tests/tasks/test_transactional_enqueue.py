"""`.delay()` inside a view's transaction: a row with the commit, published by the relay
after it, nothing on rollback."""

from __future__ import annotations

import uuid

import pytest
import redis
from django.db import transaction
from django.test import Client
from kombu.exceptions import EncodeError

from plaincelery.tasks import word_count
from tasks.exceptions import UnserializableArguments
from tasks.models import Job, JobStatus
from tasks.publish import relay
from tests.support.jobs import wait_for_job

pytestmark = [pytest.mark.urls("tests.urls"), pytest.mark.django_db(transaction=True)]


def unconsumed_queue() -> str:
    """A queue no test worker listens to, so the message stays where we can count it."""
    return f"holding-{uuid.uuid4().hex[:8]}"


def test_view_commits_the_row_and_the_relay_publishes_it_once(redis_client: redis.Redis) -> None:
    queue = unconsumed_queue()
    response = Client().get("/enqueue/", {"queue": queue})
    assert response.status_code == 200
    body = response.json()
    assert body["queue_length_inside_transaction"] == 0
    # The request wrote the row and never touched the broker.
    assert redis_client.llen(queue) == 0
    job = Job.objects.get(task_id=body["task_id"])
    assert (job.status, job.publish_due_at is not None) == (JobStatus.PENDING, True)
    assert relay.publish_pending() == 1  # what every worker's relay does
    assert redis_client.llen(queue) == 1
    assert relay.publish_pending() == 0
    assert redis_client.llen(queue) == 1
    job.refresh_from_db()
    assert (job.status, job.publish_due_at) == (JobStatus.SENT, None)
    assert (job.name, job.args, job.queue) == (word_count.name, ["three little words"], queue)
    assert job.sent_at is not None


def test_rolled_back_view_publishes_nothing_and_leaves_no_row(redis_client: redis.Redis) -> None:
    queue = unconsumed_queue()
    client = Client(raise_request_exception=False)
    response = client.get("/enqueue/", {"queue": queue, "fail": "1"})
    assert response.status_code == 500
    assert redis_client.llen(queue) == 0
    assert not Job.objects.exists()


def test_row_is_pending_inside_the_transaction_and_runs_after_commit(live_worker: object) -> None:
    with transaction.atomic():
        result = word_count.delay("one two")
        assert Job.objects.get(task_id=result.id).status == JobStatus.PENDING
    job = wait_for_job(result.id)
    assert job.status == JobStatus.SUCCESS
    assert job.result == 2


def test_unserialisable_argument_raises_at_the_call_site_and_records_nothing(
    redis_client: redis.Redis,
) -> None:
    queue = unconsumed_queue()
    with pytest.raises(UnserializableArguments, match="cannot be serialised as json") as caught:
        word_count.apply_async((object(),), queue=queue)
    assert isinstance(caught.value, EncodeError)
    assert "word_count" in str(caught.value)
    with pytest.raises(UnserializableArguments), transaction.atomic():
        word_count.apply_async(({"when": {1, 2}},), queue=queue)
    assert not Job.objects.exists()
    assert redis_client.llen(queue) == 0


def test_view_request_id_becomes_the_correlation_id_of_the_job_and_its_children(
    live_worker: object,
) -> None:
    response = Client().get("/fan-out/", headers={"X-Request-ID": "req-4711"})
    assert response["X-Request-ID"] == "req-4711"
    parent = wait_for_job(response.json()["task_id"])
    assert parent.status == JobStatus.SUCCESS
    children = [wait_for_job(child_id) for child_id in parent.result]
    assert len(children) == 3
    assert parent.correlation_id == "req-4711"
    for child in children:
        assert child.status == JobStatus.SUCCESS
        assert child.correlation_id == "req-4711"
        assert child.parent_id == parent.task_id
        assert child.root_id == parent.task_id


def test_a_view_without_request_id_gets_a_generated_one() -> None:
    response = Client().get("/enqueue/", {"queue": unconsumed_queue()})
    generated = response["X-Request-ID"]
    assert len(generated) == 32
    assert Job.objects.get(task_id=response.json()["task_id"]).correlation_id == generated
