"""Tallies of finished jobs and failure groups, kept by the recording service as it writes.

`write` (tasks.record.service) calls `Finishing.read` before its job upsert and
`Finishing.add` after it, inside the same transaction (the same read serves the Batch
rows of groups and chords: tasks.record.batches). A job is counted once, when an
event first brings it to a final status: the rows' statuses are read before the upsert,
so a redelivered or late event for a job already final counts nothing. The cost per
batch is one indexed read of the finishing jobs and one additive upsert per table.

The failed job's fingerprint is decided here too (it needs the task name, which the
worker's failure event may not carry) and written on the job row by the same upsert.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection

from tasks import lifecycle
from tasks.models import (
    FailureGroup,
    FailureTally,
    Job,
    JobStatus,
    JobTally,
    StatusTally,
    TimingTally,
)
from tasks.observations import BUCKET_BOUNDS_MS, Measure, Period
from tasks.record import batches
from tasks.record.events import JobEvent
from tasks.record.fingerprint import fingerprint

MILLISECOND = timedelta(milliseconds=1)
JOB_TALLY_SUMS = (
    *("count", "run_ms_total", "run_ms_max", "run_count"),
    *("wait_ms_total", "wait_ms_max", "wait_count"),
)
FAILURE_GROUP_VALUES = (
    *("name", "exception", "frame", "count", "first_seen", "last_seen"),
    *("sample_task_id", "sample_error", "sample_traceback"),
)
PERIODS: tuple[tuple[str, str], ...] = (
    (Period.MINUTE, "minute"),
    (Period.HOUR, "hour"),
    (Period.DAY, "day"),
)


@dataclass(frozen=True, slots=True)
class Finished:
    """One job that reached its final status in this batch."""

    name: str
    queue: str
    status: str
    at: datetime
    run_ms: int | None
    wait_ms: int | None
    fingerprint: str = ""
    exception: str = ""
    frame: str = ""
    task_id: str = ""
    error: str = ""
    traceback: str = ""


class Finishing:
    """The jobs of one batch that are about to become final, and the batches (groups,
    chords) whose members these events record or finish (tasks.record.batches)."""

    def __init__(
        self,
        finished: list[Finished],
        batch_changes: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.finished = finished
        self.batch_changes = batch_changes

    @classmethod
    def read(cls, events: Sequence[JobEvent]) -> tuple[Finishing, list[JobEvent]]:
        """Which events finish their job; the events, with a fingerprint added to failures.

        One read of the rows: the finishing jobs' and the group members' (whose Batch
        row counts them once, tasks.record.batches).
        """
        final = [event for event in events if event.status in lifecycle.TERMINAL]
        members = [event.task_id for event in events if batches.is_member(event.facts)]
        if not final and not members:
            return cls([]), list(events)
        if members:
            batches.serialise()
        known = {
            row[0]: row
            for row in Job.objects.filter(task_id__in=[e.task_id for e in final] + members)
            .order_by()
            .values_list(
                "task_id",
                "status",
                "name",
                "queue",
                "sent_at",
                "started_at",
                "group_id",
                "group_index",
                "finished_at",
            )
        }
        finished: list[Finished] = []
        marked: dict[str, JobEvent] = {}
        for event in final:
            row = known.get(event.task_id)
            if row is not None and row[1] in lifecycle.TERMINAL:
                continue  # final already: counted when it got there
            item = _finished(event, row)
            finished.append(item)
            if item.fingerprint:
                marked[event.task_id] = _with_state(event, fingerprint=item.fingerprint)
        # Only rows in a group, or about to join one, can change a Batch row.
        joining = set(members)
        grouped = {
            task_id: batches.Known(row[1], row[2], row[6], row[7], row[8])
            for task_id, row in known.items()
            if row[6] or task_id in joining
        }
        batch_changes = batches.changes(events, grouped) if grouped or joining else []
        events = [marked.get(event.task_id, event) for event in events]
        return cls(finished, batch_changes), events

    def add(self) -> None:
        """Add this batch's jobs to the tallies (one statement per table)."""
        if self.batch_changes:
            batches.add(self.batch_changes)
        if not self.finished:
            return
        _add_job_tallies(self.finished)
        _add_status_tallies(self.finished)
        _add_timing_tallies(self.finished)
        failures = [item for item in self.finished if item.fingerprint]
        if failures:
            _add_failures(failures)


def _finished(event: JobEvent, row: tuple[Any, ...] | None) -> Finished:
    state, facts = event.state, event.facts
    name = facts.get("name") or (row[2] if row else "") or ""
    queue = facts.get("queue") or (row[3] if row else "") or ""
    sent = facts.get("sent_at") or (row[4] if row else None)
    started = state.get("started_at") or (row[5] if row else None)
    ended = state.get("finished_at") or event.at
    item = Finished(
        name=name,
        queue=queue,
        status=event.status,
        at=ended,
        run_ms=_ms(started, ended),
        wait_ms=_ms(sent, started),
    )
    if event.status != JobStatus.FAILURE:
        return item
    error, traceback = state.get("error") or "", state.get("traceback") or ""
    found = fingerprint(name, error, traceback)
    return replace(
        item,
        fingerprint=found.key,
        exception=found.exception,
        frame=found.frame,
        task_id=event.task_id,
        error=error,
        traceback=traceback,
    )


def _with_state(event: JobEvent, **state: Any) -> JobEvent:
    return JobEvent(
        event.task_id, event.status, event.attempt, event.facts, {**event.state, **state}, event.at
    )


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    """Whole milliseconds from `start` to `end`, exactly (timedelta arithmetic: a float
    of seconds times 1000 turns 1.001 s into 1000 ms)."""
    if start is None or end is None or end < start:
        return None
    return (end - start) // MILLISECOND


def bucket_of(ms: int) -> int:
    """The histogram bucket of a duration: the first bound it does not exceed."""
    return bisect.bisect_left(BUCKET_BOUNDS_MS, ms)


def _add_job_tallies(finished: Iterable[Finished]) -> None:
    sums: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0, 0])
    for item in finished:
        for period, unit in PERIODS:
            key = (period, _truncate(item.at, unit), item.name, item.queue, item.status)
            row = sums[key]
            row[0] += 1
            if item.run_ms is not None:
                row[1] += item.run_ms
                row[2] = max(row[2], item.run_ms)
                row[3] += 1
            if item.wait_ms is not None:
                row[4] += item.wait_ms
                row[5] = max(row[5], item.wait_ms)
                row[6] += 1
    _upsert(
        JobTally,
        keys=("period", "start", "name", "queue", "status"),
        rows=[(*key, *values) for key, values in sums.items()],
        added=JOB_TALLY_SUMS,
        greatest=("run_ms_max", "wait_ms_max"),
    )


def _add_status_tallies(finished: Iterable[Finished]) -> None:
    counts: dict[tuple[Any, ...], int] = defaultdict(int)
    for item in finished:
        for period, unit in PERIODS:
            counts[(period, _truncate(item.at, unit), item.status)] += 1
    _upsert(
        StatusTally,
        keys=("period", "start", "status"),
        rows=[(*key, count) for key, count in counts.items()],
        added=("count",),
    )


def _add_timing_tallies(finished: Iterable[Finished]) -> None:
    counts: dict[tuple[Any, ...], int] = defaultdict(int)
    for item in finished:
        for measure, ms in ((Measure.RUN, item.run_ms), (Measure.WAIT, item.wait_ms)):
            if ms is None:
                continue
            for period, unit in PERIODS:
                counts[(period, _truncate(item.at, unit), item.name, measure, bucket_of(ms))] += 1
    if counts:
        _upsert(
            TimingTally,
            keys=("period", "start", "name", "measure", "bucket"),
            rows=[(*key, count) for key, count in counts.items()],
            added=("count",),
        )


def _add_failures(failures: Sequence[Finished]) -> None:
    groups: dict[str, Finished] = {}
    counts: dict[str, int] = defaultdict(int)
    first: dict[str, datetime] = {}
    for item in failures:
        counts[item.fingerprint] += 1
        first[item.fingerprint] = min(item.at, first.get(item.fingerprint, item.at))
        latest = groups.get(item.fingerprint)
        if latest is None or item.at >= latest.at:
            groups[item.fingerprint] = item
    _upsert(
        FailureGroup,
        keys=("fingerprint",),
        rows=[
            (
                key,
                item.name,
                item.exception[:255],
                item.frame[:512],
                counts[key],
                first[key],
                item.at,
                item.task_id,
                item.error,
                item.traceback,
            )
            for key, item in groups.items()
        ],
        values=FAILURE_GROUP_VALUES,
        added=("count",),
        least=("first_seen",),
        greatest=("last_seen",),
        latest=("sample_task_id", "sample_error", "sample_traceback"),
    )
    hourly: dict[tuple[Any, ...], list[Any]] = {}
    for item in failures:
        key = (_truncate(item.at, "hour"), item.fingerprint, item.queue)
        row = hourly.setdefault(key, [0, item.at])
        row[0] += 1
        row[1] = max(row[1], item.at)
    _upsert(
        FailureTally,
        keys=("start", "fingerprint", "queue"),
        rows=[(*key, *values) for key, values in hourly.items()],
        added=("count",),
        greatest=("last_seen",),
        values=("count", "last_seen"),
    )


def _truncate(moment: datetime, unit: str) -> datetime:
    """The start of the minute, hour or day `moment` is in, in UTC (days start at
    midnight UTC whatever the site's time zone: a tally row is one period everywhere)."""
    moment = moment.astimezone(UTC)
    if unit == "minute":
        return moment.replace(second=0, microsecond=0)
    if unit == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _upsert(
    model: Any,
    *,
    keys: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    added: tuple[str, ...] = (),
    greatest: tuple[str, ...] = (),
    least: tuple[str, ...] = (),
    latest: tuple[str, ...] = (),
    values: tuple[str, ...] | None = None,
) -> None:
    """INSERT ... ON CONFLICT DO UPDATE that adds counts and keeps extremes.

    The same SQL on PostgreSQL and SQLite (>= 3.24) but for the two-argument maximum
    and minimum. `latest` columns take the incoming value when it comes with a newer
    `last_seen` (the failure group's sample is its latest failure).
    """
    columns = keys + (values if values is not None else added)
    table = model._meta.db_table
    quote = connection.ops.quote_name
    big, small = ("GREATEST", "LEAST") if connection.vendor == "postgresql" else ("MAX", "MIN")
    updates = []
    for column in columns[len(keys) :]:
        old, new = f"{table}.{quote(column)}", f"EXCLUDED.{quote(column)}"
        if column in greatest:
            updates.append(f"{quote(column)} = {big}({old}, {new})")
        elif column in least:
            updates.append(f"{quote(column)} = {small}({old}, {new})")
        elif column in added:
            updates.append(f"{quote(column)} = {old} + {new}")
        elif column in latest:
            newer = f"EXCLUDED.last_seen >= {table}.last_seen"
            updates.append(f"{quote(column)} = CASE WHEN {newer} THEN {new} ELSE {old} END")
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) VALUES "  # noqa: S608
        + ", ".join([row_sql] * len(rows))
        + f" ON CONFLICT ({', '.join(quote(k) for k in keys)}) DO UPDATE SET "
        + ", ".join(updates)
    )
    adapt = connection.ops.adapt_datetimefield_value
    params = [adapt(v) if isinstance(v, datetime) else v for row in rows for v in row]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
