"""The broker loses its data (Redis SIGKILLed and restarted empty): every job it held
runs once, published again from its row; a broker that kept its data gets nothing twice.

Real parts: a Redis of the test's own without persistence (`--save "" --appendonly
no`), real worker processes (their recorder process runs the watch and the relay), the
test database (SQLite, or PostgreSQL with DATABASE_URL).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from celery import Celery
from django.db import transaction
from django.utils import timezone
from kombu import pools

from demo.models import DemoCounter
from devstack.redis_server import RedisServer, free_port
from tasks.broker.loss import MARKER_KEY
from tasks.models import BrokerLoss, Job, JobStatus
from tasks.operations import recent_broker_losses
from tasks.publish import relay
from tasks.record import sinks
from tests.conftest import worker_env
from tests.faults import count_run, report_pid_then_sleep, retry_after_sleep
from tests.support.broker import queued_messages, use_broker
from tests.support.jobs import wait_for_jobs
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A broker that keeps nothing on disk, on a fixed port so it comes back there."""
    server = RedisServer(port=free_port(), data_dir=tmp_path / "redis", persistent=False)
    server.start()
    yield server
    server.stop()


def kill_and_restart(server: RedisServer, app: Celery) -> None:
    """SIGKILL (no shutdown save) and start again on the same port and directory; this
    process's connections to the old one are dropped (kombu keeps them in pools)."""
    assert server.process is not None
    server.process.kill()
    server.process.wait()
    server.process = None
    server.start()
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout}s")


def statuses(task_ids: list[str]) -> dict[str, str]:
    return dict(Job.objects.filter(task_id__in=task_ids).values_list("task_id", "status"))


def runs(key: str) -> int:
    counter = DemoCounter.objects.filter(key=key).first()
    return counter.count if counter else 0


def recorder_pid(worker: WorkerProcess) -> int:
    """The worker's recorder-and-relay process (its recorder, relay, watch, heartbeat)."""
    assert worker.process is not None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != worker.process.pid:
                continue
            command = (entry / "cmdline").read_bytes()
        except (OSError, ProcessLookupError):
            continue
        if b"tasks.runtime.recorder_and_relay" in command:
            return int(entry.name)
    raise AssertionError("no recorder process beside the worker")


def env_for(server: RedisServer, side: RedisServer) -> dict[str, str]:
    return {
        **worker_env(server.url, side_redis_url=side.url),
        "TASKS_HEARTBEAT_INTERVAL": "1",
        # Rows written from events the sinks replay after the loss are marked by the
        # follow-up's re-scan: look often.
        "TASKS_BROKER_WATCH_FOLLOW_UP": "2",
        "CELERY_WORKER_PREFETCH_MULTIPLIER": "8",
    }


def test_jobs_the_broker_lost_run_once_each_after_it_restarts_empty(
    broker_redis: RedisServer, redis_server: RedisServer, celery_app: Celery, output_dir: Path
) -> None:
    consumed, later = f"loss-a-{uuid.uuid4().hex[:6]}", f"loss-b-{uuid.uuid4().hex[:6]}"
    dying = f"loss-c-{uuid.uuid4().hex[:6]}"
    env = env_for(broker_redis, redis_server)
    first = WorkerProcess(
        app=celery_app,
        env=env,
        queues=consumed,
        concurrency=1,
        log_path=output_dir / "logs" / "worker-broker-loss-1.log",
    )
    # Killed together with the broker (SIGKILL, main process, pool and recorder): its
    # running job's unacknowledged entry is gone with the data.
    doomed = WorkerProcess(
        app=celery_app,
        env=env,
        queues=dying,
        concurrency=1,
        log_path=output_dir / "logs" / "worker-broker-loss-killed.log",
    )
    second = WorkerProcess(
        app=celery_app,
        env=env,
        queues=f"{later},{dying}",
        concurrency=2,
        log_path=output_dir / "logs" / "worker-broker-loss-2.log",
    )
    client = redis.Redis.from_url(broker_redis.url)
    suspended, recorder = False, 0
    with use_broker(celery_app, broker_redis.url):
        try:
            first.start()
            doomed.start()
            # The watch beside the worker wrote the marker (and has seen it).
            wait_until(lambda: client.exists(MARKER_KEY), 10, "the broker's marker")
            # A retry waiting for its ETA (its first attempt failed at once): the
            # re-publish must carry on at attempt 2, not start over.
            retry_key = f"retry-{uuid.uuid4().hex[:8]}"
            retried = retry_after_sleep.apply_async((retry_key, 0, 8), queue=consumed).id
            wait_until(
                lambda: Job.objects.filter(task_id=retried, status=JobStatus.RETRY).exists(),
                15,
                "the retry held by the worker",
            )
            running_key = f"run-{uuid.uuid4().hex[:8]}"
            running = report_pid_then_sleep.apply_async((running_key, 6), queue=consumed).id
            # Running (its row may still say SENT: a running job's STARTED can wait in
            # its process; the worker says what it runs when asked).
            side = redis.Redis.from_url(redis_server.url)
            wait_until(lambda: side.exists(f"faults:pid:{running_key}"), 20, "running")
            doomed_key = f"doomed-{uuid.uuid4().hex[:8]}"
            orphaned = report_pid_then_sleep.apply_async((doomed_key, 60), queue=dying).id
            wait_until(lambda: side.exists(f"faults:pid:{doomed_key}"), 20, "doomed running")
            keys = {name: f"{name}-{uuid.uuid4().hex[:8]}" for name in "abcdefghijklm"}
            # In the worker's prefetch (its one process is busy): RECEIVED.
            prefetched = [count_run.apply_async((keys[n],), queue=consumed).id for n in "abc"]
            # With a countdown: held by the worker until due, RECEIVED with an ETA.
            counted = [
                count_run.apply_async((keys[n],), queue=consumed, countdown=4).id for n in "de"
            ]
            # On a queue no worker consumes yet: SENT, waiting in the broker.
            waiting = [count_run.apply_async((keys[n],), queue=later).id for n in "fghij"]
            lost = [retried, *prefetched, *counted, *waiting]
            wait_until(
                lambda: set(statuses(prefetched + counted).values()) == {JobStatus.RECEIVED},
                15,
                "prefetched jobs RECEIVED",
            )
            assert set(statuses(waiting).values()) == {JobStatus.SENT}
            assert len(queued_messages(client, later)) == 5
            time.sleep(0.5)  # the recorder has written what the stream held
            marker = client.get(MARKER_KEY)

            # Jobs whose record dies with the broker: published to it, their SENT event
            # still unread in its event stream when it dies. The recorder side is
            # stopped for the last second (SIGSTOP, shorter than the heartbeat window).
            quiet = sinks.StreamSink(
                broker_redis.url, autoflush=False, stream=sinks.PUBLISHED_STREAM
            )
            quiet._writer.marker_key = None  # keeps nothing to replay (as if it died too)
            publisher = sinks.StreamSink(
                broker_redis.url, autoflush=True, stream=sinks.PUBLISHED_STREAM
            )  # a web process's sink
            assert publisher.read_marker() == marker
            recorder = recorder_pid(first)
            os.kill(recorder, signal.SIGSTOP)
            suspended = True
            # (a) A transactional job the relay published, its SENT lost for good:
            # PENDING on record, its message gone with the broker.
            sinks.install(quiet)
            with transaction.atomic():
                relayed = count_run.apply_async((keys["k"],), queue=later).id
            assert relay.publish_pending(queues=[later]) == 1
            quiet.flush()
            quiet._writer.confirm()
            # (b) Plain `.delay()`s: no row until the recorder reads their SENT event.
            sinks.install(publisher)
            plain = [count_run.apply_async((keys[n],), queue=later).id for n in "lm"]
            wait_until(
                lambda: len(publisher._retained) >= 1 and not publisher._buffer.jobs, 5, "flushed"
            )
            assert statuses([relayed, *plain]) == {relayed: JobStatus.PENDING}
            assert Job.objects.get(task_id=relayed).publish_due_at is None
            lost += [relayed, *plain]
            killed_at = timezone.now()

            assert doomed.process is not None
            os.killpg(doomed.process.pid, signal.SIGKILL)
            doomed.process.wait()
            kill_and_restart(broker_redis, celery_app)
            os.kill(recorder, signal.SIGCONT)
            suspended = False
            client = redis.Redis.from_url(broker_redis.url)

            wait_until(
                lambda: BrokerLoss.objects.filter(finished_at__isnull=False).exists(),
                # Within seconds: the killed worker is lost after its heartbeat window
                # (3 s here); up to 5 s more when a worker online by its heartbeat does
                # not answer (the suite's own worker, on another broker).
                30,
                "the loss recovered",
            )
            second.start()  # the queue nobody consumed: its relay publishes those rows
            jobs = wait_for_jobs([running, orphaned, *lost], timeout=40)
            time.sleep(2)  # anything published twice would have run by now
        finally:
            if suspended:
                os.kill(recorder, signal.SIGCONT)
            sinks.install(sinks.DatabaseSink())  # the suite's (closes the stream sinks)
            first.stop()
            doomed.stop()
            second.stop()

    assert {job.task_id: job.status for job in jobs} == dict.fromkeys(
        [running, orphaned, *lost], JobStatus.SUCCESS
    )
    assert {key: runs(key) for key in keys.values()} == dict.fromkeys(keys.values(), 1)
    assert int(side.get(f"faults:runs:{running_key}") or 0) == 1
    assert runs(retry_key) == 1
    retry = Job.objects.get(task_id=retried)
    assert (retry.attempts, retry.result) == (2, 1)  # the retry's count carried on

    # The killed worker's job ran again (killed mid-run: at least once), recovered.
    assert int(side.get(f"faults:runs:{doomed_key}") or 0) == 2
    assert Job.objects.get(task_id=orphaned).recoveries == 1

    loss = BrokerLoss.objects.get()
    assert loss.republished == len(lost) + 1
    assert loss.still_held == 0
    assert loss.finished_at is not None
    assert loss.restarted_at is not None
    assert killed_at - timedelta(seconds=2) <= loss.restarted_at <= timezone.now()
    assert loss.detected_at - killed_at < timedelta(seconds=10)
    assert "marker" in loss.evidence
    assert client.get(MARKER_KEY) != marker  # the recovering process wrote a new one
    assert recent_broker_losses(killed_at) == [loss]
    for job in Job.objects.filter(task_id__in=lost):
        assert job.recoveries == 1, job
        assert job.recovered_at is not None
        assert job.recovered_because.startswith(f"broker redis://127.0.0.1:{broker_redis.port}")
        assert "restarted" in job.recovered_because
        assert job.publish_due_at is None
    # The running job's worker stayed alive: it kept (and finished) its job.
    assert Job.objects.get(task_id=running).recoveries == 0


def test_a_broker_restarted_with_its_data_gets_nothing_published_again(
    broker_redis: RedisServer, redis_server: RedisServer, celery_app: Celery, output_dir: Path
) -> None:
    unconsumed = f"kept-{uuid.uuid4().hex[:6]}"
    worker = WorkerProcess(
        app=celery_app,
        env=env_for(broker_redis, redis_server),
        queues=f"other-{uuid.uuid4().hex[:6]}",
        concurrency=1,
        log_path=output_dir / "logs" / "worker-broker-kept.log",
    )
    client = redis.Redis.from_url(broker_redis.url)
    with use_broker(celery_app, broker_redis.url):
        try:
            worker.start()
            wait_until(lambda: client.exists(MARKER_KEY), 10, "the broker's marker")
            marker = client.get(MARKER_KEY)
            ids = [count_run.apply_async((f"kept-{n}",), queue=unconsumed).id for n in range(5)]
            assert set(statuses(ids).values()) == {JobStatus.SENT}
            time.sleep(2.5)  # the watch has looked at least once since
            client.save()  # RDB on disk: the restart loads it
            kill_and_restart(broker_redis, celery_app)
            client = redis.Redis.from_url(broker_redis.url)
            assert client.get(MARKER_KEY) == marker
            time.sleep(6)  # three looks of the watch
            assert worker.is_alive()
        finally:
            worker.stop()

    assert not BrokerLoss.objects.exists()
    assert not Job.objects.filter(recoveries__gt=0).exists()
    assert not Job.objects.filter(publish_due_at__isnull=False).exists()
    assert sorted(m["headers"]["id"] for m in queued_messages(client, unconsumed)) == sorted(ids)
