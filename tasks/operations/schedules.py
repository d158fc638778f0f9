"""Beat's schedules (django-celery-beat's PeriodicTask rows): run one now, enable or
disable one, so that a running beat picks the change up.

A running `DatabaseScheduler` re-reads its schedule when `PeriodicTasks.last_update`
moves (it looks every few seconds, `beat_max_loop_interval`): `PeriodicTask.save()` moves
it through a signal, a queryset `update()` does not, so every write here that uses
`update()` calls `PeriodicTasks.update_changed()` itself. Nothing needs a restart.

Run now publishes the schedule's call the way beat would (its args, kwargs, queue,
exchange, routing key, priority and headers, with the `periodic_task_name` header beat
adds) through the app, so the layer records its Job row like any other publish. It does
not touch `last_run_at` or `total_run_count`: those are beat's record of its own runs,
and the next scheduled run stays where it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celery import current_app
from django.apps import apps
from django.utils import timezone

from tasks.exceptions import TaskLayerError

if TYPE_CHECKING:
    from django_celery_beat.models import PeriodicTask

#: django-celery-beat is optional (README): its models are imported only where used,
#: because importing them without the app in INSTALLED_APPS raises at once.
BEAT_APP = "django_celery_beat"

#: The header beat's DatabaseScheduler puts on every message it sends for a schedule
#: (django_celery_beat.schedulers.ModelEntry); run now sends it too.
SCHEDULE_HEADER = "periodic_task_name"
ROUTING_OPTIONS = ("queue", "exchange", "routing_key", "priority")


class ScheduleMissing(TaskLayerError, LookupError):
    """No such schedule, or django-celery-beat is not installed."""


def beat_installed() -> bool:
    """Whether django-celery-beat (and so its schedules) is in INSTALLED_APPS."""
    return apps.is_installed(BEAT_APP)


def schedule_name(pk: int) -> str | None:
    """Schedule `pk`'s name, None when there is no such schedule."""
    if not beat_installed():
        return None
    from django_celery_beat.models import PeriodicTask

    return PeriodicTask.objects.filter(pk=pk).values_list("name", flat=True).first()


class ScheduleNotRunnable(TaskLayerError, ValueError):
    """The schedule's stored call cannot be published: its args are not a JSON list, its
    kwargs or headers not a JSON object. Nothing was published or recorded; fix the
    schedule in the admin (its form checks these) and run it again."""


@dataclass(frozen=True, slots=True)
class ScheduleRun:
    """A schedule run now: which schedule, which task, and the new job's id."""

    schedule_id: int
    schedule: str
    task: str
    task_id: str


def run_schedule_now(pk: int, by: str = "", app: Any = None) -> ScheduleRun:
    """Publish schedule `pk`'s call now, outside its schedule; the new job's id.

    `by` (who asked) is for the caller's audit entry; the message does not carry it.
    Raises ScheduleMissing, ScheduleNotRunnable, and what publishing raises
    (BrokerUnavailable, QueueFull). A task registered only in another process (a worker
    of another code base) is sent by name; its row is recorded all the same.
    """
    app = app or current_app
    if not beat_installed():
        raise ScheduleMissing("django-celery-beat is not installed: there are no schedules.")
    from django_celery_beat.models import PeriodicTask

    try:
        periodic = PeriodicTask.objects.get(pk=pk)
    except PeriodicTask.DoesNotExist:
        raise ScheduleMissing(f"No schedule {pk}.") from None
    args, kwargs, options = call_of(periodic)
    task = app.tasks.get(periodic.task)
    if task is not None:
        result = task.apply_async(args, kwargs, **options)
    else:
        result = app.send_task(periodic.task, args, kwargs, **options)
    return ScheduleRun(periodic.pk, periodic.name, periodic.task, str(result.id))


def registered_tasks(app: Any = None) -> frozenset[str]:
    """The task names this process's app knows, its task modules imported first (as
    beat and the worker import them), Celery's built-ins (`celery.*`) included."""
    app = app or current_app
    app.loader.import_default_modules()
    return frozenset(app.tasks.keys())


def call_of(periodic: PeriodicTask) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """args, kwargs and apply_async options, as beat's ModelEntry builds them.

    The schedule's absolute `expires` (when the schedule stops) is left out: a job run
    by hand after it would be discarded at once. `expire_seconds` applies as for beat.
    """
    args = _json(periodic.args, "[]", list, "args", "a list")
    kwargs = _json(periodic.kwargs, "{}", dict, "kwargs", "an object")
    headers = _json(periodic.headers, "{}", dict, "headers", "an object")
    options: dict[str, Any] = {
        name: getattr(periodic, name)
        for name in ROUTING_OPTIONS
        if getattr(periodic, name) not in (None, "")
    }
    if periodic.expire_seconds:
        options["expires"] = periodic.expire_seconds
    options["headers"] = {**headers, SCHEDULE_HEADER: periodic.name}
    return args, kwargs, options


def set_schedule_enabled(pk: int, enabled: bool) -> bool:
    """Enable or disable schedule `pk`; whether anything changed.

    Disabling clears `last_run_at` as the model's own save() does. `date_changed` is set
    too: on enabling, beat counts an interval schedule that has no last run from it, so
    the first run comes one interval later instead of at once.
    """
    if not beat_installed():
        return False
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    changes: dict[str, Any] = {"enabled": enabled, "date_changed": timezone.now()}
    if not enabled:
        changes["last_run_at"] = None
    updated = PeriodicTask.objects.filter(pk=pk).exclude(enabled=enabled).update(**changes)
    if updated:
        # update() sends no signal: tell a running DatabaseScheduler to reload.
        PeriodicTasks.update_changed()
    return bool(updated)


def _json(raw: str | None, default: str, kind: type, field: str, expected: str) -> Any:
    try:
        value = json.loads(raw or default)
    except ValueError as exc:
        raise ScheduleNotRunnable(f"The schedule's {field} are not JSON: {exc}") from exc
    if not isinstance(value, kind):
        raise ScheduleNotRunnable(f"The schedule's {field} must be {expected} in JSON.")
    return value
