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
import uuid
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
from tasks.record.events import JobEvent
from tasks.runtime import broker_recovery, broker_watch
from tests.support.broker import use_broker

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


def job(status: str, *, sent: datetime | None = None) -> str:
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
    )
    return task_id


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
    assert BrokerLoss.objects.count() == 1
    assert not Job.objects.filter(recoveries__gt=1).exists()


def test_a_restart_that_kept_everything_marks_nothing_and_records_no_loss(
    aof_broker: RedisServer, pauses: list[float]
) -> None:
    watch = watching(aof_broker, "a@h")
    held = job(JobStatus.SENT)
    queue_message(aof_broker, held)
    job(JobStatus.SUCCESS)

    restart(aof_broker)

    assert look(watch) is None
    assert pauses == []  # nothing missing at the first look: no second one
    assert not recovered()
    assert not BrokerLoss.objects.exists()


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
    aof_broker: RedisServer, pauses: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = watching(aof_broker, "b@h")
    missing = job(JobStatus.SENT)
    restart(aof_broker)
    client = redis.Redis.from_url(aof_broker.url)
    run_id = client.info("server")["run_id"]
    # Another process took the look and was SIGKILLed in it.
    client.set(broker_watch._RESTART_KEY.format(run_id), "dead@h", px=500)

    assert look(watch) is None
    assert not recovered()
    time.sleep(0.6)
    loss = look(watch)

    assert loss is not None
    assert recovered() == {missing}
    assert look(watch) is None
    assert BrokerLoss.objects.count() == 1
