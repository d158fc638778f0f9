"""The Schedules page: each schedule in words with its next run and latest jobs; enable,
disable and run now, each with django-celery-beat's change permission (403 without it,
CSRF on), each in the audit log. Publishing goes to the tests' private Redis; the worker
and beat are in tests/tasks/test_schedule_beat.py."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
)

from tasks.models import Job, JobStatus
from tests.dashboard.conftest import PASSWORD

pytestmark = pytest.mark.django_db

PAGE = "/dashboard/schedules/"


def interval_task(name: str, every: int = 5, **fields: Any) -> PeriodicTask:
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period="seconds")
    return PeriodicTask.objects.create(
        name=name, task="tasks.demo.add", interval=interval, **fields
    )


def crontab_task(name: str, zone: str = "Europe/Paris", **cron: str) -> PeriodicTask:
    crontab = CrontabSchedule.objects.create(timezone=zone, **cron)
    return PeriodicTask.objects.create(
        name=name, task="tasks.demo.noop", crontab=crontab, args="[1]"
    )


def job(task_id: str, name: str, args: list[Any], status: str, ago: float) -> Job:
    return Job.objects.create(
        task_id=task_id,
        name=name,
        args=args,
        kwargs={},
        status=status,
        created_at=timezone.now() - timedelta(seconds=ago),
    )


def test_each_schedule_is_shown_in_words_with_its_next_run_in_its_zone(
    admin_client_logged_in: Client,
) -> None:
    crontab_task("weekday report", minute="0", hour="9", day_of_week="1-5")
    interval_task("heartbeat", every=5, args="[2, 3]")
    ClockedSchedule.objects.create(clocked_time=timezone.now() + timedelta(days=1))
    PeriodicTask.objects.create(
        name="once later",
        task="tasks.demo.noop",
        clocked=ClockedSchedule.objects.get(),
        one_off=True,
        args="[0]",
    )
    PeriodicTask.objects.create(
        name="celery.backend_cleanup",
        task="celery.backend_cleanup",
        crontab=CrontabSchedule.objects.create(minute="0", hour="4", timezone="UTC"),
    )

    page = admin_client_logged_in.get(PAGE)

    assert page.status_code == 200
    rows = {row.name: row for row in page.context["schedules"].rows}
    report = rows["weekday report"]
    assert report.words == "At 09:00, Monday to Friday"
    assert report.zone == "Europe/Paris"
    assert report.next_run.at is not None
    assert report.next_run.at.tzinfo is not None
    assert report.next_run.at > timezone.now()
    local = report.next_run.at
    assert (local.hour, local.minute, local.isoweekday() <= 5) == (9, 0, True)
    assert report.next_run.shown.endswith("Europe/Paris")
    assert rows["heartbeat"].words == "Every 5 seconds"
    assert 0 <= (rows["heartbeat"].next_run.at - timezone.now()).total_seconds() <= 6
    assert rows["once later"].words.startswith("Once at ")
    assert rows["celery.backend_cleanup"].housekeeping
    # Housekeeping last, muted.
    assert [row.name for row in page.context["schedules"].rows][-1] == "celery.backend_cleanup"
    html = page.content.decode()
    assert "At 09:00, Monday to Friday" in html
    assert 'class="is-housekeeping"' in html
    assert html.count('data-action="run"') == 4

    live = admin_client_logged_in.get("/dashboard/schedules/live/")
    assert live.status_code == 200
    assert "Every 5 seconds" in live.content.decode()


def test_the_latest_jobs_are_the_tasks_with_the_schedules_arguments(
    admin_client_logged_in: Client,
) -> None:
    interval_task("add 2 and 3", args="[2, 3]")
    interval_task("add 5 and 5", args="[5, 5]")
    job("a-old", "tasks.demo.add", [2, 3], JobStatus.SUCCESS, ago=30)
    job("a-new", "tasks.demo.add", [2, 3], JobStatus.FAILURE, ago=3)
    job("other", "tasks.demo.add", [5, 5], JobStatus.SUCCESS, ago=2)

    page = admin_client_logged_in.get(PAGE)

    rows = {row.name: row for row in page.context["schedules"].rows}
    assert [j.task_id for j in rows["add 2 and 3"].jobs] == ["a-new", "a-old"]
    assert [j.status for j in rows["add 2 and 3"].jobs] == ["FAILURE", "SUCCESS"]
    assert [j.task_id for j in rows["add 5 and 5"].jobs] == ["other"]
    # "Last ran" is beat's own record: these jobs may be a run now, which beat ignores.
    assert rows["add 2 and 3"].last_run_at is None
    html = page.content.decode()
    assert 'href="/dashboard/jobs/a-new/"' in html


def test_an_interval_whose_saved_last_run_is_old_is_projected_forward(
    admin_client_logged_in: Client,
) -> None:
    # Beat saves last_run_at every few minutes; a running beat has sent it since.
    interval_task("often", every=5, last_run_at=timezone.now() - timedelta(seconds=62))
    (row,) = admin_client_logged_in.get(PAGE).context["schedules"].rows
    assert row.next_run.note == "estimated"
    assert 0 < (row.next_run.at - timezone.now()).total_seconds() <= 5


def test_a_disabled_schedule_has_no_next_run(admin_client_logged_in: Client) -> None:
    interval_task("paused", enabled=False)
    page = admin_client_logged_in.get(PAGE)
    (row,) = page.context["schedules"].rows
    assert row.next_run.at is None
    assert row.next_run.note == "disabled"
    assert 'data-action="enable"' in page.content.decode()


def test_disable_and_enable_reach_beat_and_the_audit_log(admin_client_logged_in: Client) -> None:
    task = interval_task("toggled", last_run_at=timezone.now())
    PeriodicTasks.update_changed()
    before = PeriodicTasks.last_change()

    response = admin_client_logged_in.post(
        f"/dashboard/schedules/{task.pk}/enabled/", {"enabled": "0"}
    )

    assert response.status_code == 302
    task.refresh_from_db()
    assert task.enabled is False
    assert task.last_run_at is None
    assert PeriodicTasks.last_change() > before  # what a running DatabaseScheduler polls
    entry = LogEntry.objects.latest("action_time")
    assert entry.user.get_username() == "ops"
    assert json.loads(entry.change_message)["dashboard"]["action"] == "schedule_disable"
    assert "toggled" in entry.object_repr

    admin_client_logged_in.post(f"/dashboard/schedules/{task.pk}/enabled/", {"enabled": "1"})
    task.refresh_from_db()
    assert task.enabled is True
    assert LogEntry.objects.count() == 2


def test_run_now_publishes_through_the_layer_and_names_who_ran_it(
    admin_client_logged_in: Client, redis_server: Any
) -> None:
    task = interval_task(
        "adder", args="[2, 3]", queue="high", priority=3, headers='{"x-origin": "ops"}'
    )

    response = admin_client_logged_in.post(f"/dashboard/schedules/{task.pk}/run/", follow=True)

    assert response.status_code == 200
    new = Job.objects.get(name="tasks.demo.add")
    assert new.args == [2, 3]
    assert new.queue == "high"
    assert new.priority == 3
    # The test's transaction holds it for the relay (PENDING); a request outside one
    # publishes at once (SENT). The worker runs it in tests/tasks/test_schedule_beat.py.
    assert new.status in (JobStatus.PENDING, JobStatus.SENT)
    html = response.content.decode()
    assert f'href="/dashboard/jobs/{new.task_id}/"' in html  # the flash links to the job
    entry = LogEntry.objects.latest("action_time")
    assert entry.user.get_username() == "ops"
    assert entry.object_id == new.task_id
    detail = json.loads(entry.change_message)["dashboard"]
    assert detail["action"] == "schedule_run_now"
    assert detail["task_ids"] == [new.task_id]
    # Beat's own record of its runs is untouched.
    task.refresh_from_db()
    assert task.total_run_count == 0
    assert task.last_run_at is None


def test_a_forged_post_without_the_permission_gets_403(read_only_client: Client) -> None:
    task = interval_task("guarded")

    page = read_only_client.get(PAGE)
    assert page.status_code == 200
    assert 'data-action="run"' not in page.content.decode()  # no buttons to press

    assert read_only_client.post(f"/dashboard/schedules/{task.pk}/run/").status_code == 403
    disabled = read_only_client.post(f"/dashboard/schedules/{task.pk}/enabled/", {"enabled": "0"})
    assert disabled.status_code == 403
    task.refresh_from_db()
    assert task.enabled
    assert not Job.objects.exists()
    assert not LogEntry.objects.exists()


def test_posts_need_the_csrf_token(db: Any) -> None:
    user = get_user_model().objects.create_superuser("csrf", "c@example.com", PASSWORD)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    task = interval_task("csrf-checked")
    assert client.post(f"/dashboard/schedules/{task.pk}/run/").status_code == 403
    assert not Job.objects.exists()


def test_staff_without_the_view_permission_cannot_see_the_page(
    staff_without_view_client: Client,
) -> None:
    assert staff_without_view_client.get(PAGE).status_code == 403
