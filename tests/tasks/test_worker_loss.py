"""A worker process that dies: the job runs again, a poison pill is bounded (real SIGKILLs)."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import redis
from celery import Celery, current_app

from devstack.redis_server import RedisServer
from tests.conftest import worker_env
from tests.support.brokers import Broker
from tests.support.jobs import wait_for_job
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for_pid(client: redis.Redis, key: str, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = client.get(f"faults:pid:{key}")
        if pid:
            return int(pid)
        time.sleep(0.05)
    raise AssertionError(f"the task for {key} never reported its process id")


def test_child_killed_mid_task_runs_again_and_succeeds(
    live_worker: WorkerProcess, redis_client: redis.Redis
) -> None:
    key = uuid.uuid4().hex
    result = current_app.send_task("tests.faults.report_pid_then_sleep", args=[key, 30])
    os.kill(wait_for_pid(redis_client, key), signal.SIGKILL)

    job = wait_for_job(result.id, timeout=30)

    assert job.status == "SUCCESS", job.error
    assert job.result == 2  # the second run
    assert job.attempts == 2
    assert result.get(timeout=5) == 2
    assert live_worker.is_alive()


def test_poison_pill_is_retried_a_bounded_number_of_times_then_dead_lettered(
    live_worker: WorkerProcess, redis_client: redis.Redis
) -> None:
    result = current_app.send_task("tests.faults.poison_pill")

    job = wait_for_job(result.id, timeout=60)

    assert job.status == "FAILURE"
    assert "WorkerLostError" in job.error
    assert job.attempts == 3  # max_retries=2: three processes died, no more
    assert job.dead_lettered_at is not None
    # The worker survived it and still serves jobs.
    assert live_worker.is_alive()
    follow_up = current_app.send_task("tasks.demo.add", args=[2, 3])
    assert wait_for_job(follow_up.id).result == 5


def test_whole_worker_killed_its_job_is_delivered_again_to_a_new_worker(
    live_worker: WorkerProcess,
    broker: Broker,
    redis_server: RedisServer,
    celery_app: Celery,
    output_dir: Path,
    redis_client: redis.Redis,
) -> None:
    """Redis gives an unacknowledged message back after the visibility timeout (3 s
    here); RabbitMQ as soon as the dead worker's connection closes."""
    env = {
        **worker_env(broker.url, side_redis_url=redis_server.url),
        "CELERY_VISIBILITY_TIMEOUT": "3",
        # Jobs due later than this wait in the outbox; it must stay below the timeout.
        "TASKS_HOLD_AFTER": "1",
        "TASKS_HOLD_LEAD": "0",
        "CELERY_UNACKED_RESTORE_INTERVAL": "1",
        "CELERY_UNACKED_RESTORE_THROTTLE": "1",
    }
    if not broker.is_redis:
        env["TASKS_RABBITMQ_DEAD_LETTER_POLICY"] = "1"  # as the session worker
    queue = f"loss-{uuid.uuid4().hex[:8]}"

    def start_worker(n: int) -> WorkerProcess:
        return WorkerProcess(
            app=celery_app,
            env=env,
            queues=queue,
            log_path=output_dir / "logs" / f"worker-whole-kill-{n}.log",
        ).start()

    first = start_worker(1)
    key = uuid.uuid4().hex
    try:
        result = current_app.send_task(
            "tests.faults.report_pid_then_sleep", args=[key, 30], queue=queue
        )
        wait_for_pid(redis_client, key)
        assert first.process is not None
        os.killpg(first.process.pid, signal.SIGKILL)  # main process, pool, recorder
        first.process.wait()
    finally:
        first.stop()

    second = start_worker(2)
    try:
        job = wait_for_job(result.id, timeout=40)
        assert job.status == "SUCCESS", job.error
        assert job.result == 2
        assert int(redis_client.get(f"faults:runs:{key}")) == 2
    finally:
        second.stop()
