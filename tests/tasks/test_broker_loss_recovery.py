"""The parts of broker-loss recovery, against a real Redis and the test database: the
marker's evidence, what is marked (and what is not), idempotence, a stalled recovery
completed by another process, and the relay publishing a recovered row."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis
from celery import Celery
from django.utils import timezone

from devstack.redis_server import RedisServer
from tasks.broker import loss as broker_loss
from tasks.models import BrokerLoss, Job, JobStatus, OutboxMessage, WorkerBeat
from tasks.publish import relay
from tasks.runtime import broker_watch
from tests.support.broker import queued_messages, use_broker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker(celery_app: Celery) -> Iterator[RedisServer]:
    with RedisServer() as server, use_broker(celery_app, server.url):
        yield server


@pytest.fixture
def nobody_running(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """What the live workers say they run (no worker in these tests: asked of a set)."""
    running: set[str] = set()
    monkeypatch.setattr(broker_watch, "running_on_live_workers", lambda: set(running))
    return running


def job(status: str, *, sent: datetime | None = None, **fields: Any) -> str:
    task_id = uuid.uuid4().hex
    now = timezone.now()
    Job.objects.create(
        task_id=task_id,
        name="tests.faults.count_run",
        queue="q",
        args=[task_id],
        kwargs={},
        status=status,
        created_at=now - timedelta(seconds=30),
        sent_at=sent or now - timedelta(seconds=20),
        **fields,
    )
    return task_id


def envelope(task_id: str) -> str:
    return json.dumps({"body": "", "headers": {"id": task_id}, "properties": {}})


def beat(hostname: str, seen: datetime) -> None:
    WorkerBeat.objects.create(
        hostname=hostname, pid=1, started_at=seen - timedelta(hours=1), last_seen_at=seen
    )


def test_a_missing_marker_is_evidence_only_once_seen(
    broker: RedisServer, nobody_running: set[str]
) -> None:
    client = redis.Redis.from_url(broker.url)
    watch = broker_watch.BrokerWatch("w@h", url=broker.url)
    assert watch.check() is None  # no marker yet: written, nothing concluded
    assert client.exists(broker_loss.MARKER_KEY)
    assert watch.check() is None
    lost = job(JobStatus.SENT)

    client.flushall()  # a flush: the data is gone, the server did not restart
    loss = watch.check()

    assert loss is not None
    assert loss.finished_at is not None
    assert loss.restarted_at is None
    assert "marker" in loss.evidence
    assert "did not restart" in loss.evidence
    assert loss.republished == 1
    assert Job.objects.get(task_id=lost).recoveries == 1
    # The new marker is there: the next look concludes nothing.
    assert watch.check() is None
    assert BrokerLoss.objects.count() == 1


def test_another_process_finding_the_loss_second_recovers_nothing(
    broker: RedisServer, nobody_running: set[str]
) -> None:
    first = broker_watch.BrokerWatch("a@h", url=broker.url)
    second = broker_watch.BrokerWatch("b@h", url=broker.url)
    first.check()
    second.check()
    job(JobStatus.SENT)
    redis.Redis.from_url(broker.url).flushall()

    found = [first.check(), second.check()]

    assert [loss is not None for loss in found] == [True, False]
    assert BrokerLoss.objects.get().republished == 1


def test_what_is_marked_and_what_is_not(broker: RedisServer, nobody_running: set[str]) -> None:
    now = timezone.now()
    client = redis.Redis.from_url(broker.url)
    beat("dead@h", now - timedelta(minutes=5))
    beat("live@h", now)
    lost_sent = job(JobStatus.SENT)
    lost_received = job(JobStatus.RECEIVED, attempts=1, worker="live@h")
    lost_retry = job(JobStatus.RETRY, attempts=2, eta=now + timedelta(seconds=30))
    lost_running = job(JobStatus.STARTED, attempts=1, worker="dead@h", started_at=now)
    held_in_queue = job(JobStatus.SENT)
    client.lpush("q", envelope(held_in_queue))
    held_unacked = job(JobStatus.RECEIVED, attempts=1, worker="live@h")
    client.hset("unacked", "tag-1", json.dumps([json.loads(envelope(held_unacked)), "", "q"]))
    running_live = job(JobStatus.STARTED, attempts=1, worker="live@h", started_at=now)
    running_unrecorded = job(JobStatus.SENT)  # its worker says it runs it
    nobody_running.add(running_unrecorded)
    in_outbox = job(JobStatus.RETRY, attempts=1)
    OutboxMessage.objects.create(
        task_id=in_outbox, name="x", due_at=now + timedelta(hours=1), created_at=now
    )
    finished = job(JobStatus.SUCCESS)
    pending = job(JobStatus.PENDING)
    published_after = job(JobStatus.SENT, sent=now + timedelta(seconds=5))
    loss = BrokerLoss.objects.create(
        detected_at=now + timedelta(seconds=1),
        broker="redis://127.0.0.1:1/0",
        evidence="test",
        restarted_at=now - timedelta(seconds=3),
    )

    broker_watch.complete(loss, broker.url)

    marked = set(Job.objects.filter(recoveries__gt=0).values_list("task_id", flat=True))
    assert marked == {lost_sent, lost_received, lost_retry, lost_running}
    assert (
        not {
            held_in_queue,
            held_unacked,
            running_live,
            running_unrecorded,
            in_outbox,
            finished,
            pending,
            published_after,
        }
        & marked
    )
    loss.refresh_from_db()
    assert (loss.republished, loss.still_held) == (4, 2)
    assert loss.finished_at is not None
    row = Job.objects.get(task_id=lost_sent)
    assert row.publish_due_at is not None
    assert row.recovered_at == row.publish_due_at
    assert row.recovered_because.startswith(
        "broker redis://127.0.0.1:1/0 lost its data (restarted "
    )

    # Completing again (another process after a crash) marks nothing twice.
    broker_watch.complete(loss, broker.url)
    loss.refresh_from_db()
    assert loss.republished == 4
    assert set(Job.objects.filter(recoveries=1).values_list("task_id", flat=True)) == marked
    assert not Job.objects.filter(recoveries__gt=1).exists()


def test_a_loss_whose_process_died_is_completed_by_another(
    broker: RedisServer, nobody_running: set[str]
) -> None:
    now = timezone.now()
    lost = job(JobStatus.SENT, sent=now - timedelta(minutes=3))
    recent = BrokerLoss.objects.create(
        detected_at=now - timedelta(seconds=10), broker="b", evidence="still at it"
    )
    stalled = BrokerLoss.objects.create(
        detected_at=now - timedelta(minutes=2), broker="b", evidence="its process died"
    )

    broker_watch.follow_up(broker.url, "other@h")

    stalled.refresh_from_db()
    recent.refresh_from_db()
    assert stalled.finished_at is not None
    assert stalled.republished == 1
    assert recent.finished_at is None  # younger than STALLED_AFTER: left to its process
    assert Job.objects.get(task_id=lost).recoveries == 1
    # The lease: a second process at once does nothing.
    broker_watch.follow_up(broker.url, "third@h")
    assert Job.objects.get(task_id=lost).recoveries == 1


def test_the_relay_publishes_a_recovered_row_with_its_retry_count_and_eta(
    broker: RedisServer,
) -> None:
    now = timezone.now()
    eta = (now + timedelta(minutes=5)).replace(microsecond=0)
    queue = f"recovered-{uuid.uuid4().hex[:6]}"
    task_id = uuid.uuid4().hex
    Job.objects.create(
        task_id=task_id,
        name="tests.faults.count_run",
        queue=queue,
        args=["k"],
        kwargs={},
        status=JobStatus.RETRY,
        attempts=2,
        eta=eta,
        correlation_id="corr-1",
        root_id="root-1",
        created_at=now,
        sent_at=now,
        message={"unique_key": "tests:k"},
    )
    Job.objects.filter(task_id=task_id).republish_after_broker_loss(now, "broker b lost its data")

    assert relay.relay_pass(queues=[queue]).published == 1

    (message,) = queued_messages(redis.Redis.from_url(broker.url), queue)
    headers = message["headers"]
    assert headers["id"] == task_id
    assert headers["retries"] == 2  # carries on: the next attempt is the third
    assert headers["eta"].startswith(eta.isoformat()[:19])
    assert headers["root_id"] == "root-1"
    assert "unique_key" not in json.dumps(message)
    assert Job.objects.get(task_id=task_id).publish_due_at is None


def test_recovery_entry_retry_counts() -> None:
    base: dict[str, Any] = dict.fromkeys(relay._RECOVERY_COLUMNS)
    base.update(task_id="t", name="n", args=[], kwargs={}, attempts=3, queue="q")
    for status, retries in (
        (JobStatus.SENT, 0),
        (JobStatus.RECEIVED, 2),
        (JobStatus.STARTED, 2),
        (JobStatus.RETRY, 3),
    ):
        attempts = 0 if status == JobStatus.SENT else 3
        entry = relay.recovery_entry({**base, "status": status, "attempts": attempts})
        assert entry.options.get("retries", 0) == retries, status
        assert entry.options["queue"] == "q"
