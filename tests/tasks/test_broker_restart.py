"""A broker that restarts with its data (its append-only file) but without its last
writes: the jobs it no longer holds are marked to publish again, once, by one process;
a restart that lost nothing marks nothing and records no loss.

Real parts: a Redis of the test's own with an append-only file, SIGKILLed and started
again from it; the test database. The writes the disk "did not keep" are removed
before the kill (an `everysec` AOF loses them at random, which a test cannot wait for).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from django.db import DatabaseError
from django.utils import timezone

from devstack.redis_server import RedisServer, free_port
from tasks.models import BrokerLoss, Job, JobStatus
from tasks.record import service as record
from tasks.record import sinks
from tasks.record.events import JobEvent
from tasks.runtime import broker_recovery, broker_watch
from tests.support.broker import use_broker
from tests.support.jobs import recorded_job as job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def aof_broker(tmp_path: Path, celery_app: Celery) -> Iterator[RedisServer]:
    """A broker that keeps its data: every write on disk before it is acknowledged."""
    server = RedisServer(port=free_port(), data_dir=tmp_path / "redis", persistent=True)
    server.start()
    redis.Redis.from_url(server.url).config_set("appendfsync", "always")
    with use_broker(celery_app, server.url):
        yield server
    server.stop()


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits between the two looks, recorded instead of slept; no live worker."""
    waited: list[float] = []
    monkeypatch.setattr(broker_recovery, "pause", waited.append)
    monkeypatch.setattr(broker_recovery, "running_on_live_workers", set)
    return waited


def restart(server: RedisServer) -> None:
    """SIGKILL, then start again on the same port from the append-only file."""
    assert server.process is not None
    server.process.kill()
    server.process.wait()
    server.process = None
    server.start()
    redis.Redis.from_url(server.url).config_set("appendfsync", "always")


def queue_message(server: RedisServer, task_id: str) -> None:
    envelope = {"body": "", "headers": {"id": task_id}, "properties": {}}
    redis.Redis.from_url(server.url).lpush("q", json.dumps(envelope))


def look(watch: broker_watch.BrokerWatch) -> BrokerLoss | None:
    """One check, once the restarted broker answers this process's client again."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return watch.check()
        except (redis.ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def watching(server: RedisServer, hostname: str) -> broker_watch.BrokerWatch:
    watch = broker_watch.BrokerWatch(hostname, url=server.url)
    assert look(watch) is None  # writes or reads the marker and the run_id
    return watch


def new_run_id(server: RedisServer) -> str:
    return str(redis.Redis.from_url(server.url).info("server")["run_id"])


def restart_key(server: RedisServer) -> bytes | None:
    key = broker_watch._RESTART_KEY.format(new_run_id(server))
    value = redis.Redis.from_url(server.url).get(key)
    return value if isinstance(value, bytes) else None


def recovered() -> set[str]:
    return set(Job.objects.filter(recoveries__gt=0).values_list("task_id", flat=True))


def test_a_restart_without_its_last_writes_republishes_what_it_no_longer_holds(
    aof_broker: RedisServer, pauses: list[float]
) -> None:
    first, second = watching(aof_broker, "a@h"), watching(aof_broker, "b@h")
    held = job(JobStatus.SENT)
    queue_message(aof_broker, held)
    job(JobStatus.SUCCESS)  # finished: never marked
    missing = job(JobStatus.SENT)  # its message was in the writes the disk lost
    late = job(JobStatus.RECEIVED)  # taken by a worker whose unacked entry was lost too

    restart(aof_broker)
    loss = look(first)

    assert loss is not None
    assert loss.data_kept
    assert pauses == [broker_recovery.VERIFY_AFTER]
    assert recovered() == {missing, late}  # not `held`, not the finished one
    loss.refresh_from_db()
    assert (loss.republished, loss.finished_at is not None) == (2, True)
    assert loss.restarted_at is not None
    assert "with its data" in loss.evidence
    row = Job.objects.get(task_id=missing)
    assert row.publish_due_at is not None
    assert row.recovered_because.startswith(f"broker {loss.broker} restarted at ")
    # The other process sees the same restart and leaves it to the first; neither looks
    # again at its next check.
    assert look(second) is None
    assert look(first) is None
    assert second.run_id == first.run_id == new_run_id(aof_broker)
    assert pauses == [broker_recovery.VERIFY_AFTER]
    assert BrokerLoss.objects.count() == 1
    assert not Job.objects.filter(recoveries__gt=1).exists()


def test_a_restart_that_kept_everything_marks_nothing_and_records_no_loss(
    aof_broker: RedisServer, pauses: list[float]
) -> None:
    watch = watching(aof_broker, "a@h")
    held = job(JobStatus.SENT)
    queue_message(aof_broker, held)
    job(JobStatus.SUCCESS)

    before = watch.run_id
    restart(aof_broker)

    assert look(watch) is None
    assert pauses == []  # nothing missing at the first look: no second one
    assert not recovered()
    assert not BrokerLoss.objects.exists()
    # It was looked into (not skipped): the others are told, this one looks no more.
    assert before != watch.run_id == new_run_id(aof_broker)
    assert restart_key(aof_broker) == b"done"


def test_a_job_a_worker_takes_between_the_two_looks_is_not_republished(
    aof_broker: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker took it from the restored queue just as the first look read the queue
    (in neither place then): by the second look it is in the unacknowledged hash until
    it finishes (acks_late), and its row says RECEIVED."""
    watch = watching(aof_broker, "a@h")
    taken, missing = job(JobStatus.SENT), job(JobStatus.SENT)

    def a_worker_takes_it(_seconds: float) -> None:
        envelope = {"body": "", "headers": {"id": taken}, "properties": {}}
        redis.Redis.from_url(aof_broker.url).hset(
            "unacked", "tag-1", json.dumps([envelope, "", "q"])
        )
        received = JobEvent(task_id=taken, status=JobStatus.RECEIVED, attempt=1, facts={})
        record.write([received], [])

    wait: Callable[[float], Any] = a_worker_takes_it
    monkeypatch.setattr(broker_recovery, "pause", wait)
    monkeypatch.setattr(broker_recovery, "running_on_live_workers", set)
    restart(aof_broker)

    loss = look(watch)

    assert loss is not None
    assert recovered() == {missing}


def test_a_look_that_failed_half_way_is_tried_again_at_the_next(
    aof_broker: RedisServer, pauses: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = watching(aof_broker, "a@h")
    missing = job(JobStatus.SENT)
    restart(aof_broker)
    looks_for = broker_recovery.missing_after_restart

    def database_cut(url: str, restarted_at: datetime) -> set[str]:
        raise DatabaseError("server closed the connection unexpectedly")

    monkeypatch.setattr(broker_recovery, "missing_after_restart", database_cut)
    with pytest.raises(DatabaseError):
        look(watch)
    monkeypatch.setattr(broker_recovery, "missing_after_restart", looks_for)

    loss = look(watch)

    assert loss is not None
    assert recovered() == {missing}
    assert BrokerLoss.objects.count() == 1


def test_a_look_whose_process_died_is_taken_over_once_its_lease_expires(
    aof_broker: RedisServer, pauses: list[float]
) -> None:
    watch = watching(aof_broker, "b@h")
    missing = job(JobStatus.SENT)
    restart(aof_broker)
    client = redis.Redis.from_url(aof_broker.url)
    key = broker_watch._RESTART_KEY.format(new_run_id(aof_broker))
    # Another process took the look and was SIGKILLed in it.
    client.set(key, "dead@h")

    assert look(watch) is None
    assert not recovered()
    client.delete(key)  # its lease expires
    loss = look(watch)

    assert loss is not None
    assert recovered() == {missing}
    assert look(watch) is None
    assert BrokerLoss.objects.count() == 1


def test_a_job_whose_events_wait_in_the_stream_is_not_republished(
    aof_broker: RedisServer, pauses: list[float]
) -> None:
    """It ran (its message acknowledged, gone from the broker) and its SUCCESS waits for
    a recorder: its row still says SENT, and must not be taken for the job's state."""
    watch = watching(aof_broker, "a@h")
    ran, missing = job(JobStatus.SENT), job(JobStatus.SENT)
    success = JobEvent(task_id=ran, status=JobStatus.SUCCESS, attempt=1, facts={})
    stream = sinks.stream_url()
    assert stream == aof_broker.url
    redis.Redis.from_url(stream).xadd(sinks.STREAM, {"e": sinks.encode([success], [])})
    restart(aof_broker)

    loss = look(watch)

    assert loss is not None
    assert recovered() == {missing}


def test_only_recent_rows_are_looked_at(aof_broker: RedisServer, pauses: list[float]) -> None:
    """A row missing from the broker since long before the restart (a record that never
    caught up) is not what the restart lost."""
    watch = watching(aof_broker, "a@h")
    old = job(JobStatus.SENT, sent=timezone.now() - broker_recovery.RESTART_LOOKBACK * 2)
    missing = job(JobStatus.SENT)
    restart(aof_broker)

    look(watch)

    assert recovered() == {missing}
    assert old not in recovered()


def test_a_follow_up_completes_the_row_of_a_look_whose_process_died(
    aof_broker: RedisServer, pauses: list[float]
) -> None:
    now = timezone.now()
    loss = BrokerLoss.objects.create(
        detected_at=now - broker_watch.STALLED_AFTER - timedelta(seconds=5),
        broker="b",
        evidence="its process died after writing this",
        data_kept=True,
    )
    missing = job(JobStatus.SENT, sent=loss.detected_at - timedelta(seconds=10))

    broker_watch.follow_up(aof_broker.url, "other@h")

    loss.refresh_from_db()
    assert loss.finished_at is not None
    assert loss.republished == 1
    assert recovered() == {missing}
    # Finished: the next follow-ups leave it (no re-scan after a restart that kept data).
    later = job(JobStatus.SENT, sent=loss.detected_at - timedelta(seconds=1))
    broker_watch.follow_up(aof_broker.url, "third@h")
    assert later not in recovered()
