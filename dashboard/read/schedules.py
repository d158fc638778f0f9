"""The Schedules page's read model: beat's schedules, when each runs next, its last jobs.

Rows are django-celery-beat's PeriodicTask table (small: one row per schedule, at most
LIMIT read). The next run is what Celery's own schedule object answers
(`remaining_estimate`) from the time beat last sent it, in the schedule's time zone: the
crontab's own, else the project's (CELERY_TIMEZONE).

The last jobs: beat marks each message with a `periodic_task_name` header, but the job
row does not keep headers, so the jobs shown are the task's latest jobs called with the
schedule's arguments (one range of the `job_name_created` index per task name, SCAN
rows at most), which includes a "run now" and any other call of the task with the same
arguments. The page says so.

Beat writes `last_run_at` back to its table only every few minutes (Celery's
`beat_sync_every`, 3 minutes by default), so "last ran" is beat's record as saved and the
jobs column has the exact times. The jobs cannot move the next run: a run now is among
them and beat's schedule ignores it. An interval whose saved last run is more than one
interval old is projected forward (beat, running, has sent it since); `projected` says so.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, cast
from zoneinfo import ZoneInfo

from celery import schedules
from django.conf import settings
from django_celery_beat.models import PeriodicTask

from dashboard.read import schedule_words
from tasks.conf import layer_settings
from tasks.models import Job

#: Schedules listed (the table is one row per schedule; a deployment has tens).
LIMIT = 200
#: Jobs shown per schedule, newest first.
JOBS_SHOWN = 5
#: The task's newest job rows read to find a schedule's (one index range per task).
SCAN = 50
#: Celery's and django-celery-beat's own entries: shown, muted.
HOUSEKEEPING_PREFIXES = ("celery.", "tasks.retention.", "tasks.outbox.")
JOB_FIELDS = ("task_id", "name", "status", "args", "kwargs", "created_at", "finished_at")


@dataclass(frozen=True, slots=True)
class ScheduleJob:
    task_id: str
    status: str
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class NextRun:
    """When beat will send the schedule next; `at` None with `note` saying why not."""

    at: datetime | None
    note: str = ""

    @property
    def shown(self) -> str:
        """The exact time in the schedule's zone: "2030-01-02 09:00 Europe/Paris"."""
        if self.at is None:
            return ""
        return f"{self.at:%Y-%m-%d %H:%M:%S} {_zone_name(self.at.tzinfo)}"


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    pk: int
    name: str
    task: str
    kind: str
    words: str
    zone: str
    enabled: bool
    one_off: bool
    #: Celery's or the layer's own upkeep (backend cleanup, pruning, the outbox).
    housekeeping: bool
    #: TASKS_UNTRACKED_TASKS: its successful jobs get no row, so none are listed.
    untracked: bool
    registered: bool
    queue: str
    description: str
    next_run: NextRun
    last_run_at: datetime | None
    total_run_count: int
    jobs: tuple[ScheduleJob, ...]


@dataclass(frozen=True, slots=True)
class Schedules:
    rows: tuple[ScheduleRow, ...]
    #: More schedules than LIMIT exist (the rest are in the admin).
    truncated: bool
    #: The user may enable, disable and run schedules now.
    can_change: bool
    jobs_shown: int = JOBS_SHOWN


def load(now: datetime, can_change: bool, registered: Iterable[str]) -> Schedules:
    """Every schedule (up to LIMIT), by name; housekeeping last."""
    periodic = list(
        PeriodicTask.objects.select_related("interval", "crontab", "solar", "clocked").order_by(
            "name"
        )[: LIMIT + 1]
    )
    truncated = len(periodic) > LIMIT
    periodic = periodic[:LIMIT]
    jobs = _jobs_by_task({p.task for p in periodic})
    known = set(registered)
    untracked = layer_settings().untracked_tasks
    rows = [_row(p, now, jobs.get(p.task, []), known, untracked) for p in periodic]
    rows.sort(key=lambda row: (row.housekeeping, row.name.lower()))
    return Schedules(rows=tuple(rows), truncated=truncated, can_change=can_change)


def _jobs_by_task(names: set[str]) -> dict[str, list[Job]]:
    """Each task's newest SCAN rows: one bounded range of job_name_created per name."""
    found: dict[str, list[Job]] = defaultdict(list)
    for name in sorted(names):
        found[name] = list(Job.objects.named(name).order_by("-created_at").only(*JOB_FIELDS)[:SCAN])
    return found


def _row(
    periodic: PeriodicTask,
    now: datetime,
    task_jobs: list[Job],
    registered: set[str],
    untracked: frozenset[str],
) -> ScheduleRow:
    kind, words, zone = describe(periodic)
    args, kwargs = _loads(periodic.args, []), _loads(periodic.kwargs, {})
    jobs = [job for job in task_jobs if _same_call(job, args, kwargs)][:JOBS_SHOWN]
    last_run_at = periodic.last_run_at
    return ScheduleRow(
        pk=periodic.pk,
        name=periodic.name,
        task=periodic.task,
        kind=kind,
        words=words,
        zone=_zone_name(zone),
        enabled=periodic.enabled,
        one_off=periodic.one_off,
        housekeeping=periodic.task.startswith(HOUSEKEEPING_PREFIXES),
        untracked=periodic.task in untracked,
        registered=periodic.task in registered,
        queue=periodic.queue or "",
        description=periodic.description or "",
        next_run=next_run(periodic, now, last_run_at, zone),
        last_run_at=last_run_at.astimezone(zone) if last_run_at else None,
        total_run_count=periodic.total_run_count,
        jobs=tuple(
            ScheduleJob(job.task_id, job.status, job.created_at, job.finished_at) for job in jobs
        ),
    )


def describe(periodic: PeriodicTask) -> tuple[str, str, tzinfo]:
    """(kind, words, time zone) of a PeriodicTask's schedule."""
    project_zone = ZoneInfo(
        getattr(settings, "CELERY_TIMEZONE", None) or settings.TIME_ZONE or "UTC"
    )
    if periodic.crontab_id:
        cron = periodic.crontab
        zone = cron.timezone if isinstance(cron.timezone, tzinfo) else ZoneInfo(str(cron.timezone))
        words = schedule_words.crontab(
            cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week
        )
        return "crontab", words, zone
    if periodic.interval_id:
        every = periodic.interval
        return "interval", schedule_words.interval(every.every, every.period), project_zone
    if periodic.solar_id:
        sun = periodic.solar
        words = schedule_words.solar(sun.get_event_display(), sun.latitude, sun.longitude)
        return "solar", words, project_zone
    if periodic.clocked_id:
        moment = periodic.clocked.clocked_time.astimezone(project_zone)
        return "clocked", schedule_words.clocked(moment), project_zone
    return "none", "No schedule", project_zone


def next_run(
    periodic: PeriodicTask, now: datetime, last_run_at: datetime | None, zone: tzinfo
) -> NextRun:
    """When beat sends it next, as django-celery-beat's ModelEntry.is_due decides."""
    if not periodic.enabled:
        return NextRun(None, "disabled")
    if periodic.expires is not None and now >= periodic.expires:
        return NextRun(None, "expired")
    if periodic.one_off and periodic.total_run_count > 0:
        return NextRun(None, "ran once")
    try:
        schedule = periodic.schedule
    except Exception:  # a crontab Celery cannot parse: beat skips the schedule
        return NextRun(None, "never: beat cannot read this schedule")
    if periodic.clocked_id:
        at = periodic.clocked.clocked_time
        return NextRun(at.astimezone(zone), "due now" if at <= now else "")
    # ModelEntry: a schedule that never ran counts from when it was last changed.
    last = last_run_at or periodic.date_changed or now
    try:
        at = _next_after(schedule, last.astimezone(_schedule_zone(schedule, zone)), now)
    except Exception:
        return NextRun(None, "never: beat cannot read this schedule")
    if periodic.start_time is not None and at < periodic.start_time:
        at = periodic.start_time
    note = ""
    if at <= now:
        if periodic.crontab_id:
            # Beat's last run as saved is older than the last match: the next one is
            # the first match after now (beat sends a missed one at once, then this).
            at = _next_after(schedule, now.astimezone(_schedule_zone(schedule, zone)), now)
        elif periodic.interval_id and periodic.last_run_at is not None and at > last:
            every = at - last
            missed = (now - at) // every + 1
            at, note = at + missed * every, "estimated"
        else:
            at, note = now, "due now"
    if periodic.expires is not None and at >= periodic.expires:
        return NextRun(None, "expires first")
    return NextRun(at.astimezone(zone), note)


def _next_after(schedule: Any, last: datetime, now: datetime) -> datetime:
    """The first run after `last`, as Celery's schedule computes it for is_due."""
    if isinstance(schedule, schedules.crontab):
        # Exact to the minute: the start and the fast-forward remaining_estimate adds up.
        start, ends_in, _ = schedule.remaining_delta(last)
        moment: datetime = start + ends_in
        return moment
    if isinstance(schedule, schedules.schedule) and not isinstance(schedule, schedules.solar):
        every: timedelta = cast(Any, schedule).run_every  # not in celery-types' stub
        return last + every
    return now + schedule.remaining_estimate(last)


def _schedule_zone(schedule: Any, zone: tzinfo) -> tzinfo:
    return getattr(schedule, "tz", None) or zone


def _same_call(job: Job, args: Any, kwargs: Any) -> bool:
    return (job.args or []) == args and (job.kwargs or {}) == kwargs


def _loads(raw: str | None, default: Any) -> Any:
    try:
        return json.loads(raw) if raw else default
    except ValueError:
        return default


def _zone_name(zone: tzinfo | None) -> str:
    if zone is None:
        return ""
    return str(getattr(zone, "key", None) or zone)
