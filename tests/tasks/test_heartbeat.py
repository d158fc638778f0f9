"""Worker heartbeats with real workers: online while running, stopped on a clean
shutdown, lost (no longer beating, never marked stopped) after a SIGKILL."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from celery import Celery
from django.utils import timezone

from devstack.redis_server import RedisServer
from tasks.models import WorkerBeat
from tasks.operations import workers_online
from tasks.runtime.heartbeat import online_within
from tests.conftest import worker_env
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)


def _beat_of(hostname: str, timeout: float = 30.0) -> WorkerBeat:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        beat = WorkerBeat.objects.filter(hostname=hostname).first()
        if beat is not None:
            return beat
        time.sleep(0.2)
    raise AssertionError(f"no heartbeat from {hostname} in {timeout}s")


def _worker(
    celery_app: Celery, redis_server: RedisServer, output_dir: Path, n: int
) -> WorkerProcess:
    return WorkerProcess(
        app=celery_app,
        env=worker_env(redis_server.url, side_redis_url=redis_server.url),
        queues="heartbeat-test",
        concurrency=1,
        log_path=output_dir / "logs" / f"worker-heartbeat-{n}.log",
    ).start()


def test_a_running_worker_is_online_and_a_clean_shutdown_marks_it_stopped(
    celery_app: Celery, redis_server: RedisServer, output_dir: Path
) -> None:
    worker = _worker(celery_app, redis_server, output_dir, 1)
    try:
        beat = _beat_of(worker.name)
        assert worker.process is not None
        assert (beat.pid, beat.pool, beat.concurrency) == (worker.process.pid, "prefork", 1)
        assert beat.queues == ["heartbeat-test"]
        assert worker.name in [w.hostname for w in workers_online()]
    finally:
        worker.stop()
    beat = WorkerBeat.objects.get(hostname=worker.name)
    assert beat.stopped_at is not None
    assert worker.name not in [w.hostname for w in workers_online()]


def test_a_worker_killed_with_sigkill_stops_beating_and_is_not_marked_stopped(
    celery_app: Celery, redis_server: RedisServer, output_dir: Path
) -> None:
    worker = _worker(celery_app, redis_server, output_dir, 2)
    try:
        _beat_of(worker.name)
        assert worker.process is not None
        os.kill(worker.process.pid, signal.SIGKILL)
        time.sleep(2)  # the process beside it notices its parent is gone within a second
        last = WorkerBeat.objects.get(hostname=worker.name).last_seen_at
        time.sleep(7)  # more than one heartbeat interval
        beat = WorkerBeat.objects.get(hostname=worker.name)
        assert beat.last_seen_at == last  # no longer beating
        assert beat.stopped_at is None  # lost, not shut down
        later = timezone.now() + online_within()
        assert worker.name not in [w.hostname for w in workers_online(later)]
    finally:
        worker.stop()
