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
from django.db import connection

from tasks.models import Job, JobStatus
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
