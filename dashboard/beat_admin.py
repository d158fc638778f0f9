"""django-celery-beat's admin, with the checks its forms leave out.

Registered from dashboard/admin.py in place of django-celery-beat's own PeriodicTask and
CrontabSchedule admins (same lists, same actions):

- the task is chosen from the tasks registered in this process; a name typed by hand
  is kept only when it is not one of those (a task of another code base's workers),
  with a warning after saving, and it must look like a task name;
- args must be a JSON list, kwargs and headers JSON objects (django-celery-beat only
  checks that they parse, and beat drops a schedule whose args are `{}`);
- crontab fields are checked with Celery's own parser, the one beat uses: python-crontab
  (django-celery-beat's validator) accepts `7` for Sunday, `1,,2` and `*/`, which Celery
  refuses, so beat silently skips the schedule, and its admin answered 500 rendering
  `1,,2` (Celery's ParseException is no ValueError). Each gives a field error now;
- crontab descriptions come from dashboard.read.schedule_words, which never raises.
"""

from __future__ import annotations

import json
import re
from typing import Any

import django_celery_beat.admin as beat_admin
from celery import schedules
from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from dashboard.read import schedule_words
from tasks import operations

#: What a hand-typed task name may look like (Celery's are dotted identifiers).
TASK_NAME = re.compile(r"^[\w.:\-]+$")
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
#: Marks a form whose task is not registered here, for the warning after saving.
UNREGISTERED = "_unregistered_task"


def task_choices() -> list[tuple[str, str]]:
    names = sorted(name for name in operations.registered_tasks() if not name.startswith("celery."))
    return [("", "---------"), *((name, name) for name in names)]


class CheckedPeriodicTaskForm(beat_admin.PeriodicTaskForm):
    regtask = forms.ChoiceField(
        label="Task (registered)",
        required=False,
        choices=task_choices,
        help_text="A task this project registers.",
    )
    task = forms.CharField(
        label="Task (other)",
        required=False,
        max_length=200,
        help_text=(
            "Only for a task registered by other workers, not by this project; "
            "saved with a warning."
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = self.instance.task if self.instance.pk else ""
        if current and current in operations.registered_tasks():
            # Shown as the list's choice, the "other" box left empty.
            self.initial["regtask"], self.initial["task"] = current, ""

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean()
        name = data.get("task") or ""
        if not self.data.get("regtask") and name:
            if name in operations.registered_tasks():
                # Typed by hand but registered here: it is the list's choice.
                data["regtask"] = name
            elif not TASK_NAME.match(name):
                self.add_error("task", "Not a task name (letters, digits, _ . : - only).")
            else:
                setattr(self.instance, UNREGISTERED, True)
        crontab = data.get("crontab")
        if crontab is not None:
            problem = _celery_refuses(crontab)
            if problem:
                self.add_error("crontab", f"Beat cannot read this crontab ({problem}).")
        return data

    def clean_args(self) -> str:
        return _json_field(self.cleaned_data["args"], list, 'a JSON list, like [1, "a"]')

    def clean_kwargs(self) -> str:
        return _json_field(self.cleaned_data["kwargs"], dict, 'a JSON object, like {"a": 1}')

    def clean_headers(self) -> str:
        return _json_field(self.cleaned_data["headers"], dict, "a JSON object")


class CheckedCrontabForm(forms.ModelForm):
    class Meta:
        model = CrontabSchedule
        fields = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week", "timezone")

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        for field in CRON_FIELDS:
            value = data.get(field)
            if value is None or field in self.errors:
                continue
            try:
                schedules.crontab(**{field: value})
            except Exception as exc:  # ValueError, or ParseException (not a ValueError)
                self.add_error(field, f"Celery cannot read {value!r}: {exc or 'bad value'}.")
        return data


@admin.display(description="in words")
def _crontab_words(crontab: CrontabSchedule | None) -> str:
    if crontab is None or crontab.pk is None:
        return "-"
    return f"{_words(crontab)} ({crontab.timezone})"


class CheckedPeriodicTaskAdmin(beat_admin.PeriodicTaskAdmin):
    form = CheckedPeriodicTaskForm

    @admin.display(description="Crontab in words")
    def crontab_translation(self, obj: PeriodicTask) -> str:
        return _crontab_words(obj.crontab) if obj.crontab_id else "-"

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # django-celery-beat's own builds this from human_readable, which raises on a
        # crontab Celery cannot parse: every task form would answer 500.
        context = {
            **(extra_context or {}),
            "readable_crontabs": {
                crontab.id: _crontab_words(crontab) for crontab in CrontabSchedule.objects.all()
            },
        }
        return admin.ModelAdmin.changeform_view(self, request, object_id, form_url, context)

    def save_model(self, request: HttpRequest, obj: PeriodicTask, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if getattr(obj, UNREGISTERED, False):
            self.message_user(
                request,
                f"{obj.task!r} is not registered in this project: beat sends it by name and "
                "only a worker that registers it can run it. Check the spelling.",
                messages.WARNING,
            )


class CheckedCrontabScheduleAdmin(beat_admin.CrontabScheduleAdmin):
    form = CheckedCrontabForm
    list_display = ("__str__", "in_words")
    fields = (
        "in_words",
        "minute",
        "hour",
        "day_of_month",
        "month_of_year",
        "day_of_week",
        "timezone",
    )
    readonly_fields = ("in_words",)

    @admin.display(description="in words")
    def in_words(self, obj: CrontabSchedule) -> str:
        return _crontab_words(obj)


def _words(crontab: CrontabSchedule) -> str:
    return schedule_words.crontab(
        crontab.minute,
        crontab.hour,
        crontab.day_of_month,
        crontab.month_of_year,
        crontab.day_of_week,
    )


def _celery_refuses(crontab: CrontabSchedule) -> str:
    try:
        crontab.schedule  # noqa: B018 - building it is the check
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return ""


def _json_field(value: str, kind: type, expected: str) -> str:
    text = (value or "").strip()
    if not text:
        return "[]" if kind is list else "{}"
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise forms.ValidationError(f"Not JSON ({exc}); expected {expected}.") from exc
    if not isinstance(parsed, kind):
        raise forms.ValidationError(f"Expected {expected}.")
    return text


def register(site: admin.AdminSite = admin.site) -> None:
    """Put these admins in place of django-celery-beat's (idempotent)."""
    for model, model_admin in (
        (PeriodicTask, CheckedPeriodicTaskAdmin),
        (CrontabSchedule, CheckedCrontabScheduleAdmin),
    ):
        if site.is_registered(model):
            if isinstance(site._registry[model], model_admin):
                continue
            site.unregister(model)
        site.register(model, model_admin)
