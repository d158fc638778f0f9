"""django-celery-beat's admin forms, checked (dashboard.beat_admin): a registered task or
a hand-typed one with a warning, JSON args and kwargs of the right shape, crontab fields
Celery can read; every bad value a field error (200), never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

pytestmark = pytest.mark.django_db

CRONTAB_ADD = "/admin/django_celery_beat/crontabschedule/add/"
TASK_ADD = "/admin/django_celery_beat/periodictask/add/"
# The crontab admin's inline (tasks using the crontab) wants its management form.
INLINE = {
    "periodictask_set-TOTAL_FORMS": "0",
    "periodictask_set-INITIAL_FORMS": "0",
    "periodictask_set-MIN_NUM_FORMS": "0",
    "periodictask_set-MAX_NUM_FORMS": "1000",
}


def crontab_form(**fields: str) -> dict[str, str]:
    every = dict.fromkeys(("minute", "hour", "day_of_month", "month_of_year", "day_of_week"), "*")
    return {**every, "timezone": "UTC", **INLINE, **fields}


def task_form(**fields: Any) -> dict[str, Any]:
    interval, _ = IntervalSchedule.objects.get_or_create(every=5, period="seconds")
    return {
        "name": "adder",
        "regtask": "tasks.demo.add",
        "task": "",
        "enabled": "on",
        "interval": interval.pk,
        "args": "[1, 2]",
        "kwargs": "{}",
        "headers": "{}",
        **fields,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("minute", "61"),
        ("hour", "*/0"),
        ("day_of_week", "funday"),
        ("day_of_week", "7"),  # cron's Sunday; Celery refuses it and beat would skip it
        ("day_of_week", "1-7"),
        ("minute", "1,,2"),  # django-celery-beat's own admin answered 500
        ("minute", "*/"),  # likewise
        ("day_of_month", "0"),
        ("month_of_year", "13"),
        ("hour", "5-3"),
    ],
)
def test_a_bad_crontab_field_is_a_field_error(
    admin_client_logged_in: Client, field: str, value: str
) -> None:
    response = admin_client_logged_in.post(CRONTAB_ADD, crontab_form(**{field: value}))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors, errors
    assert not CrontabSchedule.objects.exists()


def test_a_good_crontab_is_saved_and_shown_in_words(admin_client_logged_in: Client) -> None:
    response = admin_client_logged_in.post(
        CRONTAB_ADD, crontab_form(minute="0", hour="9", day_of_week="mon-fri")
    )
    assert response.status_code == 302
    crontab = CrontabSchedule.objects.get()
    change = admin_client_logged_in.get(
        f"/admin/django_celery_beat/crontabschedule/{crontab.pk}/change/"
    )
    assert "At 09:00, Monday to Friday" in change.content.decode()


def test_a_stored_crontab_celery_cannot_read_does_not_break_the_admin(
    admin_client_logged_in: Client,
) -> None:
    # Written by code, not the form: the lists and forms still answer.
    crontab = CrontabSchedule.objects.create(minute="1,,2")
    PeriodicTask.objects.create(name="broken", task="tasks.demo.noop", crontab=crontab)
    for url in (
        "/admin/django_celery_beat/crontabschedule/",
        f"/admin/django_celery_beat/crontabschedule/{crontab.pk}/change/",
        "/admin/django_celery_beat/periodictask/",
        TASK_ADD,
        f"/admin/django_celery_beat/periodictask/{PeriodicTask.objects.get().pk}/change/",
    ):
        assert admin_client_logged_in.get(url).status_code == 200, url
    response = admin_client_logged_in.post(TASK_ADD, task_form(interval="", crontab=crontab.pk))
    assert response.status_code == 200
    assert "crontab" in response.context["adminform"].form.errors


def test_the_task_is_chosen_from_the_registered_tasks(admin_client_logged_in: Client) -> None:
    form = admin_client_logged_in.get(TASK_ADD).context["adminform"].form
    choices = [value for value, _ in form.fields["regtask"].choices]
    assert "tasks.demo.add" in choices
    assert not any(name.startswith("celery.") for name in choices)

    response = admin_client_logged_in.post(TASK_ADD, task_form(), follow=True)

    assert response.status_code == 200
    assert PeriodicTask.objects.get(name="adder").task == "tasks.demo.add"
    assert not [m for m in response.context["messages"] if m.level_tag == "warning"]


def test_a_task_registered_elsewhere_is_saved_with_a_warning(
    admin_client_logged_in: Client,
) -> None:
    response = admin_client_logged_in.post(
        TASK_ADD, task_form(regtask="", task="billing.tasks.sync_invoices"), follow=True
    )

    assert response.status_code == 200
    assert PeriodicTask.objects.get(name="adder").task == "billing.tasks.sync_invoices"
    warnings = [str(m) for m in response.context["messages"] if m.level_tag == "warning"]
    assert warnings
    assert "not registered in this project" in warnings[0]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"regtask": "no.such.task"}, "regtask"),
        ({"regtask": "", "task": "send email now"}, "task"),
        ({"args": '{"a": 1}'}, "args"),
        ({"args": "[1, 2"}, "args"),
        ({"kwargs": "[1]"}, "kwargs"),
        ({"kwargs": "nope"}, "kwargs"),
        ({"headers": "[]"}, "headers"),
    ],
)
def test_bad_task_fields_are_field_errors(
    admin_client_logged_in: Client, fields: dict[str, str], field: str
) -> None:
    response = admin_client_logged_in.post(TASK_ADD, task_form(**fields))

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not PeriodicTask.objects.exists()
