"""Pausing a queue, on real workers over the real Redis broker: every worker stops
consuming it within seconds, a worker started while it is paused never consumes it,
and resume hands it back only to the workers started for it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from devstack.redis_server import RedisServer
from tasks.models import Job, JobStatus, WorkerBeat
from tasks.operations import pause_queue, queue_states, resume_queue
from tests.conftest import worker_env
from tests.faults import mark_ran
from tests.support.broker import clear_queue
from tests.support.jobs import wait_for_jobs
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)

#: How soon every worker must have stopped (the broadcast; the periodic re-read is 5 s).
STOPS_WITHIN = 3.0


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not true after {timeout}s: {what}")


def consumed(app: Celery, worker: WorkerProcess) -> set[str]:
    replies = app.control.inspect([worker.name], timeout=2.0).active_queues() or {}
    return {queue["name"] for queue in replies.get(worker.name, [])}


def beats_for(worker: WorkerProcess) -> bool:
    return WorkerBeat.objects.filter(hostname=worker.name, stopped_at__isnull=True).exists()


@pytest.fixture
def queue(redis_client: redis.Redis) -> Iterator[str]:
    name = f"pausable-{uuid.uuid4().hex[:8]}"
    yield name
    clear_queue(redis_client, name)


@pytest.fixture
def start_worker(
    celery_app: Celery, redis_server: RedisServer, output_dir: Path, transactional_db: None
) -> Iterator[Callable[[str], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(queues: str) -> WorkerProcess:
        process = WorkerProcess(
            app=celery_app,
            env=worker_env(redis_server.url),
            log_path=output_dir / "logs" / f"queue-pause-{len(started)}-{uuid.uuid4().hex[:6]}.log",
            queues=queues,
            concurrency=1,
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


def test_pause_stops_every_worker_survives_a_restart_and_resume_picks_it_up(
    celery_app: Celery,
    redis_client: redis.Redis,
    queue: str,
    start_worker: Callable[[str], WorkerProcess],
) -> None:
    other = f"other-{uuid.uuid4().hex[:8]}"
    first, second, bystander = start_worker(queue), start_worker(queue), start_worker(other)
    warm_up = [mark_ran.apply_async((f"warm-{i}",), queue=queue).id for i in range(4)]
    wait_for_jobs(warm_up)
    eventually(lambda: beats_for(first) and beats_for(second), 20, "heartbeats written")

    assert pause_queue(queue, by="ops")
    eventually(
        lambda: queue not in consumed(celery_app, first) | consumed(celery_app, second),
        STOPS_WITHIN,
        "both workers stopped consuming",
    )
    held = [mark_ran.apply_async((f"held-{i}",), queue=queue).id for i in range(5)]
    time.sleep(2.5)
    assert redis_client.llen(queue) == 5
    assert set(Job.objects.filter(task_id__in=held).values_list("status", flat=True)) == {
        JobStatus.SENT
    }
    state = next(s for s in queue_states(max_age=0) if s.name == queue)
    assert state.paused
    assert state.depth == 5
    assert state.consumers == 0
    assert state.workers == 2

    # A worker (re)started while the queue is paused does not consume it.
    second.stop()
    replacement = start_worker(queue)
    time.sleep(6)  # past a re-read of the pauses
    assert queue not in consumed(celery_app, replacement)
    assert redis_client.llen(queue) == 5
    eventually(lambda: beats_for(replacement), 20, "the replacement's heartbeat")

    assert resume_queue(queue, by="ops")
    wait_for_jobs(held, timeout=30)
    assert queue in consumed(celery_app, first)
    assert queue in consumed(celery_app, replacement)
    # Resume goes only to the workers started for the queue.
    assert queue not in consumed(celery_app, bystander)
    assert other in consumed(celery_app, bystander)
