"""Every task is tracked by a real worker: plain tasks, failures, unknown names, send_task."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from celery import Celery
from celery.result import AsyncResult
from django.test import Client

from demo.tasks import add
from plaincelery.tasks import parse_amount, word_count
from tasks.models import Job, JobStatus
from tests.support.jobs import wait_for_job
from tests.support.worker import WorkerProcess


def test_plain_shared_task_is_tracked_to_success(live_worker: WorkerProcess) -> None:
    result = word_count.delay("the quick brown fox")
    job = wait_for_job(result.id)
    assert job.status == JobStatus.SUCCESS
    assert (job.name, job.args, job.kwargs, job.result) == (
        "plaincelery.tasks.word_count",
        ["the quick brown fox"],
        {},
        4,
    )
    assert job.queue == "default"
    assert job.attempts == 1
    assert job.progress == 100


def test_worker_hostname_and_timings_are_recorded(live_worker: WorkerProcess) -> None:
    job = wait_for_job(add.delay(1, 2).id)
    assert job.worker == live_worker.name
    assert job.created_at <= job.sent_at <= job.started_at <= job.finished_at
    assert job.runtime_seconds is not None
    assert job.runtime_seconds >= 0


def test_async_result_get_returns_the_result(live_worker: WorkerProcess) -> None:
    result = add.delay(20, 22)
    assert result.get(timeout=30) == 42
    assert AsyncResult(result.id).status == "SUCCESS"
    assert AsyncResult(result.id).info == 42


def test_apply_async_options_land_on_the_row(live_worker: WorkerProcess) -> None:
    result = add.apply_async((2, 2), countdown=1, priority=3, queue="default")
    job = wait_for_job(result.id)
    assert job.status == JobStatus.SUCCESS
    assert job.eta is not None
    assert job.priority == 3
    assert job.started_at >= job.eta


def test_failing_task_stores_error_and_traceback(live_worker: WorkerProcess) -> None:
    result = parse_amount.delay("twelve")
    job = wait_for_job(result.id)
    assert job.status == JobStatus.FAILURE
    assert job.error.startswith("ValueError: could not convert string to float")
    assert "Traceback" in job.traceback
    assert "float(raw)" in job.traceback
    assert job.finished_at is not None
    with pytest.raises(ValueError, match="could not convert"):
        result.get(timeout=10)


def test_unknown_task_name_ends_as_failure_and_the_worker_keeps_running(
    live_worker: WorkerProcess, celery_app: Celery
) -> None:
    result = celery_app.send_task("billing.tasks.does_not_exist", args=(1,), queue="default")
    job = wait_for_job(result.id)
    assert job.status == JobStatus.FAILURE
    assert "NotRegistered" in job.error
    assert "billing.tasks.does_not_exist" in job.error
    assert job.args == [1]
    assert live_worker.ping()
    assert add.delay(1, 1).get(timeout=30) == 2


def send_without_django(broker_url: str, send: str, cwd: Path) -> str:
    """Run `send` (an expression on `app`, a bare `Celery(broker=...)`) in a process that
    cannot import Django, as another service would; the id of the task it sent."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["django"] = None  # this producer cannot import Django at all
        from celery import Celery
        app = Celery(broker={broker_url!r})
        print(({send}).id)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


def test_send_task_from_a_process_without_django_is_tracked(
    live_worker: WorkerProcess, celery_app: Celery, tmp_path: Path
) -> None:
    task_id = send_without_django(
        celery_app.conf.broker_url,
        'app.send_task("tasks.demo.add", args=(40, 2), queue="default")',
        tmp_path,
    )
    job = wait_for_job(task_id)
    assert job.status == JobStatus.SUCCESS
    assert (job.name, job.args, job.result, job.queue) == ("tasks.demo.add", [40, 2], 42, "default")
    assert job.worker == live_worker.name
    # No publisher record: the worker created the row and gave it a correlation id.
    assert job.sent_at is None
    assert job.correlation_id == task_id
    assert Job.objects.filter(task_id=task_id).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_django_free_producer_using_celerys_defaults_is_served(
    live_worker: WorkerProcess, celery_app: Celery, tmp_path: Path, admin_client: Client
) -> None:
    """Another service's `send_task` with no queue and no configuration: queue `celery`."""
    task_id = send_without_django(
        celery_app.conf.broker_url, 'app.send_task("tasks.demo.add", (40, 2))', tmp_path
    )
    job = wait_for_job(task_id)
    assert (job.status, job.result, job.queue) == (JobStatus.SUCCESS, 42, "celery")
    listed = admin_client.get("/admin/tasklayer/job/", {"q": task_id})
    assert listed.status_code == 200
    assert task_id in listed.content.decode()
