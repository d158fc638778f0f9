"""Real faults: a pool process SIGKILLed as its task returns; the database restarted.

Nothing recorded may be lost and no state may go backwards: the job's final state and
result must end up in the database, and `AsyncResult.get()` must return the result.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid

import pytest
import redis
from celery import current_app
from django.db import connection

from tasks.models import Job, JobAttempt, JobStatus
from tests.faults import return_then_die, slow_noop
from tests.support.jobs import wait_for_job
from tests.support.worker import WorkerProcess


@pytest.mark.parametrize("delay", [0.0, 0.001, 0.005, 0.02, 0.1])
def test_sigkill_of_the_pool_process_right_after_return_loses_nothing(
    live_worker: WorkerProcess, delay: float
) -> None:
    key = f"kill-{uuid.uuid4().hex[:8]}"
    result = return_then_die.delay(key, delay)
    job = wait_for_job(result.id, timeout=60)
    assert job.status == JobStatus.SUCCESS
    assert job.result == key
    assert result.get(timeout=30) == key
    assert job.attempts >= 1
    assert job.finished_at is not None
    assert live_worker.is_alive()


def _restart_postgres() -> None:
    if shutil.which("pg_ctlcluster") and os.geteuid() == 0:
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
            check=True,
            timeout=120,
        )
        return
    # No control over the server: cut every other connection to our database instead.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="restarts PostgreSQL")
def test_database_restart_under_load_loses_no_job(live_worker: WorkerProcess) -> None:
    results = [slow_noop.delay(i, 0.01) for i in range(400)]
    restarter = threading.Thread(target=_restart_postgres)
    time.sleep(0.5)  # the worker is draining
    restarter.start()
    restarter.join(timeout=150)
    connection.close()  # ours was cut too
    for i, result in enumerate(results):
        job = wait_for_job(result.id, timeout=120)
        assert job.status == JobStatus.SUCCESS, (i, job.status, job.error)
        assert job.result == i
    assert (
        Job.objects.filter(status=JobStatus.SUCCESS, name="tests.faults.slow_noop").count() == 400
    )
    assert results[-1].get(timeout=30) == 399
    assert live_worker.is_alive()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="terminates a PostgreSQL backend")
def test_database_connection_killed_mid_task_the_job_still_ends_recorded(
    live_worker: WorkerProcess, redis_client: redis.Redis
) -> None:
    key = uuid.uuid4().hex
    result = current_app.send_task("tests.faults.query_sleep_query", args=[key, 3])
    deadline = time.monotonic() + 20
    while not redis_client.get(f"faults:backend:{key}"):
        assert time.monotonic() < deadline, "the task never reported its database backend"
        time.sleep(0.05)
    backend = int(redis_client.get(f"faults:backend:{key}"))
    with connection.cursor() as cursor:
        # The task's own connection (others, like the live server's, are left alone).
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
        for _ in range(50):  # termination is asynchronous
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [backend])
            if cursor.fetchone()[0] == 0:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"backend {backend} survived pg_terminate_backend")

    job = wait_for_job(result.id, timeout=60)

    assert job.status == JobStatus.SUCCESS, job.error
    assert job.result == 2
    assert job.attempts == 2
    # The first attempt's process may store its events after the second one finished
    # (it was waiting out the broken connection).
    deadline = time.monotonic() + 15
    while JobAttempt.objects.filter(task_id=job.task_id).count() < 2:
        assert time.monotonic() < deadline, "the first attempt was never recorded"
        time.sleep(0.1)
    attempts = list(JobAttempt.objects.filter(task_id=job.task_id).order_by("number"))
    assert [a.status for a in attempts] == ["RETRY", "SUCCESS"]
    assert "OperationalError" in attempts[0].error or "InterfaceError" in attempts[0].error
    assert live_worker.is_alive()
    assert wait_for_job(current_app.send_task("tasks.demo.add", args=[1, 1]).id).result == 2
