"""The outbox: nothing enqueued in a transaction is lost to a broker outage, nothing is
published twice, far-future jobs wait in the database, failed retry publishes are kept.

Real Redis servers (our own, stopped and restarted on a fixed port), real workers, the
real database.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from celery import Celery
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.test import Client, override_settings
from django.utils import timezone
from kombu.exceptions import OperationalError

from demo.models import DemoCounter
from devstack.redis_server import RedisServer, free_port
from tasks.exceptions import BrokerUnavailable
from tasks.models import Job, JobStatus, OutboxMessage
from tasks.publish import messages, outbox, reconciler, relay
from tests.conftest import worker_env
from tests.faults import count_run
from tests.support.broker import queued_messages, use_broker
from tests.support.concurrency import in_threads
from tests.support.jobs import wait_for_job
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)


def enqueue_counted_job(request: HttpRequest) -> JsonResponse:
    """A view as users write them: enqueue inside the request's transaction.

    The queue is the test's own: the session worker (whichever broker it is on) shares
    the test database, and its relay would otherwise claim and publish the row first.
    """
    with transaction.atomic():
        result = count_run.apply_async((request.GET["key"],), queue=request.GET["queue"])
    return JsonResponse({"task_id": result.id})


def unconsumed_queue() -> str:
    return f"outbox-{uuid.uuid4().hex[:8]}"


def runs(key: str) -> int:
    counter = DemoCounter.objects.filter(key=key).first()
    return counter.count if counter else 0


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of our own on a fixed port, persistent, so it can stop and come back."""
    server = RedisServer(port=free_port(), data_dir=tmp_path / "redis", persistent=True)
    server.start()
    yield server
    server.stop()


# --- The required fault: broker down while a view enqueues ---------------------------------


def test_job_enqueued_by_a_view_while_redis_is_down_runs_once_after_redis_restarts(
    restartable_redis: RedisServer, celery_app: Celery, output_dir: Path
) -> None:
    key = f"outage-{uuid.uuid4().hex[:8]}"
    queue = unconsumed_queue()  # consumed (and relayed) only by this test's worker
    with (
        use_broker(celery_app, restartable_redis.url),
        override_settings(ROOT_URLCONF="tests.outbox_urls"),
    ):
        restartable_redis.stop()
        started = time.monotonic()
        response = Client().get("/enqueue-counted/", {"key": key, "queue": queue})
        elapsed = time.monotonic() - started

        assert response.status_code == 200
        assert elapsed < 5, f"the request waited {elapsed:.1f}s on a dead broker"
        task_id = response.json()["task_id"]
        job = Job.objects.get(task_id=task_id)
        assert (job.status, job.name, job.args) == (
            JobStatus.PENDING,
            "tests.faults.count_run",
            [key],
        )
        assert job.message["queue"] == queue
        assert job.publish_due_at is not None

        # A relay pass meets the dead broker: bounded, nothing published, the row given
        # back (due again, not held by a claim) with nothing lost.
        started = time.monotonic()
        result = relay.relay_pass()
        assert time.monotonic() - started < 5
        assert (result.published, result.broker_down) == (0, True)
        job.refresh_from_db()
        assert job.status == JobStatus.PENDING
        assert job.publish_due_at is not None
        assert job.publish_due_at <= timezone.now()

        restartable_redis.start()  # same port
        worker = WorkerProcess(
            app=celery_app,
            env=worker_env(restartable_redis.url),
            log_path=output_dir / "logs" / "worker-outbox-outage.log",
            queues=queue,
        )
        try:
            worker.start()  # its relay publishes the job
            job = wait_for_job(task_id, timeout=60)
            assert job.status == JobStatus.SUCCESS, job.error
            assert job.result == 1
            # Beat's run finds nothing left, and nothing runs a second time.
            assert reconciler.publish_due_task() == 0
            assert not Job.objects.filter(publish_due_at__isnull=False).exists()
            time.sleep(2)
            assert runs(key) == 1
            assert Job.objects.filter(task_id=task_id).count() == 1
        finally:
            worker.stop()


def test_delay_outside_a_transaction_with_the_broker_down_raises_and_records_nothing(
    celery_app: Celery,
) -> None:
    with use_broker(celery_app, f"redis://127.0.0.1:{free_port()}/0"):
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="broker did not answer") as caught:
            count_run.delay("never")
        assert time.monotonic() - started < 5
    assert isinstance(caught.value, OperationalError)  # existing handlers still catch it
    assert not Job.objects.exists()
    outbox.flush_deletions()  # published rows are deleted in batches
    assert not OutboxMessage.objects.exists()


# --- No message is published twice -----------------------------------------------------


def test_reconcilers_racing_over_the_same_due_messages_publish_each_once(
    redis_client: redis.Redis,
) -> None:
    queue = unconsumed_queue()
    now = timezone.now()
    ids = [uuid.uuid4().hex for _ in range(40)]
    OutboxMessage.objects.bulk_create(
        OutboxMessage(
            task_id=task_id,
            name="tests.faults.count_run",
            args=[task_id],
            options={"queue": queue},
            due_at=now,
            created_at=now,
        )
        for task_id in ids
    )
    published = in_threads(4, outbox.publish_due)

    assert sum(published) == 40  # type: ignore[arg-type]
    messages = queued_messages(redis_client, queue)
    assert sorted(message["headers"]["id"] for message in messages) == sorted(ids)
    outbox.flush_deletions()  # published rows are deleted in batches
    assert not OutboxMessage.objects.exists()


# --- Far-future ETAs --------------------------------------------------------------------

SHORT_VISIBILITY = {
    "CELERY_VISIBILITY_TIMEOUT": "6",
    "TASKS_HOLD_AFTER": "2",
    "TASKS_HOLD_LEAD": "1",
}


@pytest.fixture
def short_visibility_worker(
    redis_server: RedisServer, celery_app: Celery, output_dir: Path
) -> Iterator[tuple[WorkerProcess, str]]:
    """A worker whose Redis visibility timeout is 6 s, on a queue of its own."""
    queue = unconsumed_queue()
    worker = WorkerProcess(
        app=celery_app,
        env={**worker_env(redis_server.url), **SHORT_VISIBILITY},
        log_path=output_dir / "logs" / f"worker-{queue}.log",
        queues=queue,
    )
    try:
        worker.start()
        yield worker, queue
    finally:
        worker.stop()  # also when it never became ready


def reconcile_until_empty(timeout: float) -> None:
    """What beat does, faster: publish what is due until the outbox is empty."""
    deadline = time.monotonic() + timeout
    while OutboxMessage.objects.exists():
        assert time.monotonic() < deadline, "the outbox was not published in time"
        outbox.publish_due()
        time.sleep(0.3)


@override_settings(TASKS_HOLD_AFTER=2, TASKS_HOLD_LEAD=1)
def test_countdown_longer_than_the_visibility_timeout_is_held_and_runs_once(
    short_visibility_worker: tuple[WorkerProcess, str], redis_client: redis.Redis
) -> None:
    _, queue = short_visibility_worker
    key = f"far-{uuid.uuid4().hex[:8]}"
    result = count_run.apply_async((key,), countdown=14, queue=queue)

    job = Job.objects.get(task_id=result.id)
    assert job.status == JobStatus.PENDING
    assert job.eta is not None
    held = OutboxMessage.objects.get(task_id=result.id)
    assert held.due_at == job.eta - timedelta(seconds=1)
    assert held.claimed_at is None
    assert queued_messages(redis_client, queue) == []  # the broker never saw it early

    reconcile_until_empty(timeout=30)
    assert timezone.now() >= held.due_at
    done = wait_for_job(result.id, timeout=30)
    assert done.status == JobStatus.SUCCESS
    assert done.started_at >= job.eta
    # What makes it run once: the message reached the broker (and a worker, where it
    # waits for its ETA as "unacked") less than the visibility timeout before its ETA,
    # so kombu never restores it. Without the hold it would have waited 14 s there and
    # been delivered again by the next restore sweep (kombu throttles those to one
    # every ~100 s, too slow to wait for in a test).
    assert done.sent_at is not None
    assert (done.eta - done.sent_at).total_seconds() < 6
    time.sleep(1)
    assert runs(key) == 1


# --- Retries --------------------------------------------------------------------------------


@override_settings(TASKS_HOLD_AFTER=60)
def test_retry_with_a_long_countdown_is_held_as_retry(redis_client: redis.Redis) -> None:
    queue = unconsumed_queue()
    task_id = uuid.uuid4().hex
    # What Task.retry does: the same id, `retries` in the options.
    count_run.apply_async(("retry",), task_id=task_id, retries=2, countdown=600, queue=queue)
    job = Job.objects.get(task_id=task_id)
    assert (job.status, job.attempts) == (JobStatus.RETRY, 2)
    assert job.eta is not None
    held = OutboxMessage.objects.get(task_id=task_id)
    assert held.options["retries"] == 2
    assert held.options["queue"] == queue
    assert queued_messages(redis_client, queue) == []


def test_retry_whose_publish_fails_is_kept_and_published_later(
    restartable_redis: RedisServer, celery_app: Celery
) -> None:
    queue = unconsumed_queue()
    task_id = uuid.uuid4().hex
    with use_broker(celery_app, restartable_redis.url):
        restartable_redis.stop()
        result = count_run.apply_async(
            ("kept",), task_id=task_id, retries=1, countdown=1, queue=queue
        )  # Celery would raise Reject(requeue=False) here and lose the job
        assert result.id == task_id
        assert Job.objects.get(task_id=task_id).status == JobStatus.RETRY
        kept = OutboxMessage.objects.get(task_id=task_id)
        assert kept.options["retries"] == 1
        assert kept.last_error
        assert outbox.publish_due() == 0  # still down: stays
        restartable_redis.start()
        assert outbox.publish_due() == 1
        client = redis.Redis.from_url(restartable_redis.url)
        try:
            (message,) = queued_messages(client, queue)
        finally:
            client.close()
    assert message["headers"]["id"] == task_id
    assert message["headers"]["retries"] == 1
    assert message["headers"]["eta"]
    outbox.flush_deletions()  # published rows are deleted in batches
    assert not OutboxMessage.objects.exists()


def test_the_reconciler_itself_leaves_no_job_row_when_it_succeeds(
    live_worker: WorkerProcess,
) -> None:
    from celery import current_app

    from tasks.models import Job

    result = current_app.send_task("tasks.outbox.publish_due")  # ignore_result: no .get()
    behind = current_app.send_task("tasks.demo.add", args=[1, 1])
    assert wait_for_job(behind.id).status == "SUCCESS"
    time.sleep(1)  # the reconciler ran first (FIFO, prefetch 1) and had time to finish

    assert not Job.objects.filter(task_id=result.id).exists()


def test_batched_delete_removes_published_rows_and_spares_rows_claimed_again() -> None:
    """The deletion thread's one statement per batch matches each row's claim: a row a
    reconciler claimed again since (or a retry's new row) must survive it."""
    published_claim = timezone.now() - timedelta(seconds=5)
    entries = [
        messages.Entry(f"del-{i}", "tasks.demo.noop", [i], {}, {}, claimed_at=published_claim)
        for i in range(3)
    ]
    for entry in entries:
        entry.insert()
    reclaimed = published_claim + timedelta(seconds=1)
    OutboxMessage.objects.filter(task_id="del-2").update(claimed_at=reclaimed)

    outbox._delete_claimed([(entry.task_id, published_claim) for entry in entries])

    assert list(OutboxMessage.objects.values_list("task_id", "claimed_at")) == [
        ("del-2", reclaimed)
    ]
