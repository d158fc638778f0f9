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
from tasks.record import sinks
from tasks.record.events import JobEvent
from tasks.runtime import broker_recovery, broker_watch
from tests.support.broker import queued_messages, use_broker
from tests.support.jobs import recorded_job as job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker(celery_app: Celery) -> Iterator[RedisServer]:
    with RedisServer() as server, use_broker(celery_app, server.url):
        yield server


@pytest.fixture
def nobody_running(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """What the live workers say they run (no worker in these tests: asked of a set)."""
    running: set[str] = set()
    monkeypatch.setattr(broker_recovery, "running_on_live_workers", lambda: set(running))
    return running


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
    pending = job(JobStatus.PENDING)  # no stored options: not the relay's
    # Published by the relay (options stored, no longer due), its SENT lost with the
    # stream: lost with the broker. One still due: the relay publishes it anyway.
    relayed_unrecorded = job(JobStatus.PENDING, message={"queue": "q"})
    relayed_due = job(JobStatus.PENDING, message={"queue": "q"}, publish_due_at=now)
    published_after = job(JobStatus.SENT, sent=now + timedelta(seconds=5))
    loss = BrokerLoss.objects.create(
        detected_at=now + timedelta(seconds=1),
        broker="redis://127.0.0.1:1/0",
        evidence="test",
        restarted_at=now - timedelta(seconds=3),
    )

    broker_recovery.complete(loss, broker.url)

    marked = set(Job.objects.filter(recoveries__gt=0).values_list("task_id", flat=True))
    assert marked == {lost_sent, lost_received, lost_retry, lost_running, relayed_unrecorded}
    assert (
        not {
            held_in_queue,
            held_unacked,
            running_live,
            running_unrecorded,
            in_outbox,
            finished,
            pending,
            relayed_due,
            published_after,
        }
        & marked
    )
    loss.refresh_from_db()
    assert (loss.republished, loss.still_held) == (5, 2)
    assert loss.finished_at is not None
    row = Job.objects.get(task_id=lost_sent)
    assert row.publish_due_at is not None
    assert row.recovered_at == row.publish_due_at
    assert row.recovered_because.startswith(
        "broker redis://127.0.0.1:1/0 lost its data (restarted "
    )

    # Completing again (another process after a crash) marks nothing twice.
    broker_recovery.complete(loss, broker.url)
    loss.refresh_from_db()
    assert loss.republished == 5
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
    # A second process right after marks nothing twice.
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


def test_rows_recorded_after_the_first_scan_are_marked_by_the_follow_up(
    broker: RedisServer, nobody_running: set[str]
) -> None:
    """The sinks replay the events the broker's stream lost: a plain `.delay()`'s row
    appears a moment after the first scan, and the follow-up's re-scan marks it."""
    now = timezone.now()
    loss = BrokerLoss.objects.create(
        detected_at=now - timedelta(seconds=20),
        broker="b",
        evidence="test",
        finished_at=now - timedelta(seconds=19),
    )
    late = job(JobStatus.SENT, sent=now - timedelta(seconds=21))  # replayed SENT
    after = job(JobStatus.SENT, sent=now - timedelta(seconds=5))  # published since
    nobody_running.add(running := job(JobStatus.SENT, sent=now - timedelta(seconds=22)))

    broker_watch.follow_up(broker.url, "w@h")
    broker_watch.follow_up(broker.url, "v@h")  # the lease is given back; nothing twice

    assert set(Job.objects.filter(recoveries__gt=0).values_list("task_id", flat=True)) == {late}
    assert Job.objects.get(task_id=late).recoveries == 1
    loss.refresh_from_db()
    assert loss.republished == 1
    assert not Job.objects.filter(task_id__in=[after, running], recoveries__gt=0).exists()

    # Past RESCAN_WINDOW only lost workers' running jobs are looked for.
    old = BrokerLoss.objects.create(
        detected_at=now - broker_watch.RESCAN_WINDOW - timedelta(seconds=5),
        broker="b",
        evidence="older",
        finished_at=now - broker_watch.RESCAN_WINDOW,
    )
    loss.delete()
    too_late = job(JobStatus.SENT, sent=old.detected_at - timedelta(seconds=1))
    broker_watch.follow_up(broker.url, "w@h")
    assert Job.objects.get(task_id=too_late).recoveries == 0


def sent_event(task_id: str) -> JobEvent:
    return JobEvent(
        task_id=task_id,
        status=JobStatus.SENT,
        attempt=0,
        facts={"name": "tests.faults.count_run", "args": [task_id], "queue": "q"},
    )


def settle(sink: sinks.StreamSink) -> None:
    """Read the replies now (a sink reads them at its next flush) and act on them."""
    sink._writer.confirm()
    sink._after_readings()
    sink._writer.confirm()


def stream_ids(client: redis.Redis, stream: str) -> list[str]:
    return [
        task["t"] for _, fields in client.xrange(stream) for task in json.loads(fields[b"e"])["j"]
    ]


def test_a_sink_replays_what_it_flushed_when_the_broker_lost_its_stream(
    broker: RedisServer,
) -> None:
    assert sinks.BROKER_MARKER_KEY == broker_loss.MARKER_KEY
    client = redis.Redis.from_url(broker.url)
    stream = f"replay-{uuid.uuid4().hex[:6]}"
    client.set(broker_loss.MARKER_KEY, "m1 ")
    sink = sinks.StreamSink(broker.url, autoflush=False, stream=stream)
    assert sink._writer.marker_key == broker_loss.MARKER_KEY
    try:
        for task_id in "ab":
            sink.emit_job(sent_event(task_id))
            sink.flush()  # XADD and GET in one write
            settle(sink)
        assert stream_ids(client, stream) == ["a", "b"]

        client.flushall()  # the broker lost its data, the stream with it
        sink.emit_job(sent_event("c"))
        sink.flush()
        settle(sink)  # the marker is missing: what it kept is added again
        assert sorted(stream_ids(client, stream)) == ["a", "b", "c", "c"]

        # A new marker is not a loss (nothing seen was lost): nothing replayed.
        client.set(broker_loss.MARKER_KEY, "m2 ")
        for task_id in "de":
            sink.emit_job(sent_event(task_id))
            sink.flush()
            settle(sink)
        assert sorted(stream_ids(client, stream)) == ["a", "b", "c", "c", "d", "e"]
    finally:
        sink.close()


def test_a_sink_forgets_what_sat_long_enough_in_an_intact_stream(
    broker: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sinks, "REPLAY_SECONDS", 0.0)
    redis.Redis.from_url(broker.url).set(broker_loss.MARKER_KEY, "m1 ")
    sink = sinks.StreamSink(broker.url, autoflush=False, stream="forget")
    try:
        for task_id in "abc":
            sink.emit_job(sent_event(task_id))
            sink.flush()
            settle(sink)
        # Only the last entry is kept: its GET left with it, its reply is all there is.
        assert [json.loads(payload)["j"][0]["t"] for _, payload in sink._retained] == ["c"]
    finally:
        sink.close()


def test_a_sink_on_another_redis_than_the_broker_reads_no_marker(broker: RedisServer) -> None:
    with RedisServer() as other:
        sink = sinks.StreamSink(other.url, autoflush=False, stream="s")
        try:
            assert sink._writer.marker_key is None
            sink.emit_job(sent_event("x"))
            sink.flush()
            assert not sink._retained
        finally:
            sink.close()


def test_a_broker_that_refuses_info_still_has_its_loss_found(
    broker: RedisServer, nobody_running: set[str]
) -> None:
    """INFO is read with the marker, for restarts that keep the data; a server whose ACL
    (or proxy) refuses it must not lose the marker's evidence with it."""
    admin = redis.Redis.from_url(broker.url)
    admin.acl_setuser(
        "watcher",
        enabled=True,
        passwords=["+not-a-secret"],
        keys=["*"],
        channels=["*"],
        commands=["+@all", "-info"],
    )
    url = broker.url.replace("redis://", "redis://watcher:not-a-secret@")
    with pytest.raises(redis.exceptions.NoPermissionError):
        redis.Redis.from_url(url).info("server")
    watch = broker_watch.BrokerWatch("w@h", url=url)
    assert watch.check() is None
    assert watch.check() is None
    lost = job(JobStatus.SENT)
    admin.flushall()

    loss = watch.check()

    assert loss is not None
    assert "watcher@" in loss.broker
    assert "not-a-secret" not in loss.broker
    assert Job.objects.get(task_id=lost).recoveries == 1
