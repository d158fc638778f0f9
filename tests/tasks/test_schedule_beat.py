"""Schedules with a real beat (`celery beat` with django-celery-beat's DatabaseScheduler,
as a subprocess), the session's real worker and Redis: schedules created through the
admin's forms produce recorded jobs; one disabled from the dashboard stops without
restarting beat; "run now" records a job the worker runs, with who ran it in the audit
log. The crontab one waits for the next minute: up to 60 s, once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.test import Client
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from tasks.models import Job, JobStatus
from tests.conftest import worker_env
from tests.support.brokers import Broker
from tests.support.jobs import wait_for_job
from tests.support.process_group import stop_process_group
from tests.support.worker import PROJECT_ROOT, WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)

INLINE = {  # the schedule admins' inline (tasks using the schedule): its management form
    "periodictask_set-TOTAL_FORMS": "0",
    "periodictask_set-INITIAL_FORMS": "0",
    "periodictask_set-MIN_NUM_FORMS": "0",
    "periodictask_set-MAX_NUM_FORMS": "1000",
}
#: DatabaseScheduler looks for changes every beat loop: at most 5 s (its max interval).
BEAT_NOTICES = 5.0


@contextmanager
def running_beat(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "project",
                "beat",
                "-S",
                "django_celery_beat.schedulers:DatabaseScheduler",
                "-l",
                "INFO",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            stop_process_group(process, timeout=10)


def admin_client() -> Client:
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "s3cret-pass")
    client = Client()
    client.force_login(user)
    return client


def add_through_admin(client: Client, model: str, data: dict[str, Any]) -> None:
    response = client.post(f"/admin/django_celery_beat/{model}/add/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors


def jobs_of(name: str, args: list[Any]) -> list[Job]:
    return [job for job in Job.objects.named(name).order_by("created_at") if job.args == args]


def wait_for_jobs_of(name: str, args: list[Any], count: int, timeout: float) -> list[Job]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished = [job for job in jobs_of(name, args) if job.status == JobStatus.SUCCESS]
        if len(finished) >= count:
            return finished
        time.sleep(0.25)
    raise AssertionError(f"{count} finished {name}{args} jobs not seen in {timeout}s")


def test_schedules_made_in_the_admin_produce_jobs_and_a_disabled_one_stops_without_a_restart(
    live_worker: WorkerProcess, broker: Broker, output_dir: Path
) -> None:
    client = admin_client()
    add_through_admin(client, "intervalschedule", {"every": "2", "period": "seconds", **INLINE})
    every = {
        "minute": "*",
        "hour": "*",
        "day_of_month": "*",
        "month_of_year": "*",
        "day_of_week": "*",
        "timezone": "UTC",
    }
    add_through_admin(client, "crontabschedule", {**every, **INLINE})
    # An invalid crontab is a field error on the same form, not a 500.
    refused = client.post(
        "/admin/django_celery_beat/crontabschedule/add/", {**every, "minute": "61", **INLINE}
    )
    assert refused.status_code == 200
    assert "minute" in refused.context["adminform"].form.errors
    common = {"enabled": "on", "kwargs": "{}", "headers": "{}", "task": ""}
    add_through_admin(
        client,
        "periodictask",
        {
            **common,
            "name": "add every 2 s",
            "regtask": "tasks.demo.add",
            "interval": IntervalSchedule.objects.get().pk,
            "args": "[20, 22]",
        },
    )
    add_through_admin(
        client,
        "periodictask",
        {
            **common,
            "name": "noop every minute",
            "regtask": "tasks.demo.noop",
            "crontab": CrontabSchedule.objects.get().pk,
            "args": "[7]",
        },
    )
    interval_task = PeriodicTask.objects.get(name="add every 2 s")
    log = output_dir / "logs" / f"beat-schedules-{broker.name}.log"

    with running_beat(worker_env(broker.url), log):
        ran = wait_for_jobs_of("tasks.demo.add", [20, 22], count=2, timeout=30)
        assert ran[0].result == 42
        # The crontab's first match is the next minute boundary.
        (minutely, *_) = wait_for_jobs_of("tasks.demo.noop", [7], count=1, timeout=75)
        assert minutely.created_at.second < 5  # sent at the top of the minute

        # Disabled from the dashboard; beat, still running, stops sending it.
        disabled = client.post(
            f"/dashboard/schedules/{interval_task.pk}/enabled/", {"enabled": "0"}
        )
        assert disabled.status_code == 302
        time.sleep(BEAT_NOTICES + 3)  # beat notices; a job already sent is recorded
        settled = len(jobs_of("tasks.demo.add", [20, 22]))
        time.sleep(BEAT_NOTICES + 2)
        assert len(jobs_of("tasks.demo.add", [20, 22])) == settled, beat_log(log)

        # The page: the schedules in words, their latest jobs linked to the job rows.
        page = client.get("/dashboard/schedules/")
        rows = {row.name: row for row in page.context["schedules"].rows}
        assert rows["add every 2 s"].words == "Every 2 seconds"
        assert rows["add every 2 s"].next_run.note == "disabled"
        assert rows["noop every minute"].words == "Every minute"
        assert rows["noop every minute"].next_run.at is not None
        shown = rows["add every 2 s"].jobs
        assert shown
        assert shown[0].status == JobStatus.SUCCESS
        assert f'href="/dashboard/jobs/{shown[0].task_id}/"' in page.content.decode()
        assert 'class="is-housekeeping"' in page.content.decode()  # beat's own entries


def test_run_now_records_a_job_the_worker_runs_and_who_ran_it(live_worker: WorkerProcess) -> None:
    client = admin_client()
    interval, _ = IntervalSchedule.objects.get_or_create(every=1, period="days")
    schedule = PeriodicTask.objects.create(
        name="daily sum", task="tasks.demo.add", interval=interval, args="[40, 2]"
    )

    response = client.post(f"/dashboard/schedules/{schedule.pk}/run/")

    assert response.status_code == 302
    entry = LogEntry.objects.latest("action_time")
    assert entry.user.get_username() == "ops"
    detail = json.loads(entry.change_message)["dashboard"]
    assert detail["action"] == "schedule_run_now"
    job = wait_for_job(entry.object_id, timeout=30)
    assert job.status == JobStatus.SUCCESS
    assert job.result == 42
    assert job.name == "tasks.demo.add"


def beat_log(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""
