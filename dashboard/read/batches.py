"""Batches (groups and chords): the list, one batch, its progress over time, its CSV.

Every number is the Batch row the recorder keeps (tasks.record.batches): a batch of
100,000 items is one row to read, never a count of job rows. What does read job rows
goes through the group's own index (`job_group_member`) and is bounded: the progress
chart groups the members' finish times in the database into at most ~120 buckets, the
page lists at most a few failed members, the CSV stops at TASKS_EXPORT_LIMIT.
"""

from __future__ import annotations

import csv
import enum
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count
from django.db.models.functions import TruncDay, TruncHour, TruncMinute, TruncSecond
from django.utils import timezone

from dashboard.export import safe_cell
from tasks import lifecycle
from tasks.models import Job, JobStatus
from tasks.observations import Batch, BatchKind

#: Batches on one page of the list.
PAGE_SIZE = 50
#: Failed members listed on a batch's page (the rest: the explorer).
FAILED_SHOWN = 10
CSV_COLUMNS = ("task_id", "position", "status", "error", "duration_ms", "finished_at")
MILLISECOND = timedelta(milliseconds=1)


class BatchState(enum.StrEnum):
    RUNNING = "running"
    COMPLETE = "complete"
    WITH_FAILURES = "with failures"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class BatchView:
    """One Batch row as the pages show it."""

    id: int
    group_id: str
    kind: str
    name: str
    callback_id: str
    total: int
    succeeded: int
    failed: int
    cancelled: int
    created_at: datetime
    last_finished_at: datetime | None

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def remaining(self) -> int:
        return max(self.total - self.done, 0)

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, self.done * 100 // self.total)

    @property
    def state(self) -> BatchState:
        """Running while members are still to finish; then with failures when a member
        failed, cancelled when none failed but some were cancelled, else complete."""
        if self.done < self.total:
            return BatchState.RUNNING
        if self.failed:
            return BatchState.WITH_FAILURES
        if self.cancelled:
            return BatchState.CANCELLED
        return BatchState.COMPLETE

    @property
    def is_chord(self) -> bool:
        return self.kind == BatchKind.CHORD

    @property
    def explorer_query(self) -> str:
        return f"batch:{self.group_id}"

    @property
    def elapsed_seconds(self) -> float:
        end = self.last_finished_at if self.state != BatchState.RUNNING else timezone.now()
        return max(((end or timezone.now()) - self.created_at).total_seconds(), 0.0)


_FIELDS = (
    "id",
    "group_id",
    "kind",
    "name",
    "callback_id",
    "total",
    "succeeded",
    "failed",
    "cancelled",
    "created_at",
    "last_finished_at",
)


@dataclass(frozen=True, slots=True)
class BatchPage:
    batches: list[BatchView]
    #: The keyset cursor of the next (older) page, or "" on the last page.
    older: str


def newest(before: str = "", size: int = PAGE_SIZE) -> BatchPage:
    """The newest batches first, `size` at most, older than the cursor `before`
    ("<created_at ISO>|<id>", as `older` gives it): an index range, whatever the count."""
    rows = Batch.objects.order_by("-created_at", "-id")
    cursor = _parse_cursor(before)
    if cursor is not None:
        at, pk = cursor
        rows = rows.filter(created_at__lte=at).exclude(created_at=at, id__gte=pk)
    found = [BatchView(*row) for row in rows.values_list(*_FIELDS)[: size + 1]]
    older = ""
    if len(found) > size:
        found = found[:size]
        last = found[-1]
        older = f"{last.created_at.isoformat()}|{last.id}"
    return BatchPage(found, older)


def _parse_cursor(text: str) -> tuple[datetime, int] | None:
    at, _, pk = text.partition("|")
    try:
        moment = datetime.fromisoformat(at)
        number = int(pk)
    except ValueError:
        return None
    if timezone.is_naive(moment):
        return None
    return moment, number


def one(group_id: str) -> BatchView | None:
    row = Batch.objects.filter(group_id=group_id).values_list(*_FIELDS).first()
    return BatchView(*row) if row is not None else None


@dataclass(frozen=True, slots=True)
class Callback:
    """A chord's body: the job run with the members' results once all succeeded."""

    task_id: str
    job: Job | None  # None: not recorded yet (it is published when the members are done)


def callback(batch: BatchView) -> Callback | None:
    if not batch.callback_id:
        return None
    job = (
        Job.objects.filter(task_id=batch.callback_id)
        .only("task_id", "name", "status", "finished_at", "error")
        .first()
    )
    return Callback(batch.callback_id, job)


def failed_members(batch: BatchView, limit: int = FAILED_SHOWN) -> list[Job]:
    """A few failed members, by position (the group's index, then the failed among them)."""
    if not batch.failed:
        return []
    return list(
        Job.objects.in_group(batch.group_id)
        .filter(status=JobStatus.FAILURE, group_index__isnull=False)
        .order_by("group_index")
        .only("task_id", "name", "group_index", "error", "finished_at")[:limit]
    )


# --- Progress over time ---------------------------------------------------------------

_STEPS = (
    (timedelta(minutes=2), TruncSecond, timedelta(seconds=1)),
    (timedelta(hours=2), TruncMinute, timedelta(minutes=1)),
    (timedelta(days=5), TruncHour, timedelta(hours=1)),
)


def progress_chart(batch: BatchView) -> dict[str, Any]:
    """Members finished so far, over time: cumulative lines (all finished, and failed)
    from the batch's start to its last finish, one point per second, minute, hour or
    day as the span asks (at most ~120 points). One grouped read of the group's rows."""
    start = batch.created_at
    end = batch.last_finished_at or start
    span = max(end - start, timedelta(0))
    trunc: Any = TruncDay
    step = timedelta(days=1)
    for most, function, width in _STEPS:
        if span <= most:
            trunc, step = function, width
            break
    counts: dict[datetime, list[int]] = {}
    if batch.done:
        rows = (
            Job.objects.in_group(batch.group_id)
            .filter(
                group_index__isnull=False,
                finished_at__isnull=False,
                status__in=lifecycle.TERMINAL,
            )
            .order_by()
            .annotate(bucket=trunc("finished_at"))
            .values_list("bucket", "status")
            .annotate(n=Count("id"))
        )
        for bucket, status, n in rows:
            entry = counts.setdefault(bucket, [0, 0])
            entry[0] += n
            if status == JobStatus.FAILURE:
                entry[1] += n
    first = _floor(start, step)
    labels: list[str] = []
    done: list[int] = []
    failed: list[int] = []
    total_done = total_failed = 0
    buckets = sorted(counts)
    moment = first
    index = 0
    limit = _floor(end, step)
    fmt = "%H:%M:%S" if step < timedelta(minutes=1) else "%m-%d %H:%M"
    # The line starts at 0, one step before the first bucket (the batch's start).
    labels.append(timezone.localtime(first - step).strftime(fmt))
    done.append(0)
    failed.append(0)
    while moment <= limit and len(labels) < 400:
        while index < len(buckets) and buckets[index] <= moment:
            total_done += counts[buckets[index]][0]
            total_failed += counts[buckets[index]][1]
            index += 1
        labels.append(timezone.localtime(moment).strftime(fmt))
        done.append(total_done)
        failed.append(total_failed)
        moment += step
    return {
        "type": "line",
        "labels": labels,
        "datasets": [
            {"label": "Finished", "data": done, "status": "SUCCESS"},
            {"label": "Failed", "data": failed, "status": "FAILURE"},
        ],
        "stacked": False,
    }


def _floor(moment: datetime, step: timedelta) -> datetime:
    local = timezone.localtime(moment)
    if step >= timedelta(days=1):
        return local.replace(hour=0, minute=0, second=0, microsecond=0)
    if step >= timedelta(hours=1):
        return local.replace(minute=0, second=0, microsecond=0)
    if step >= timedelta(minutes=1):
        return local.replace(second=0, microsecond=0)
    return local.replace(microsecond=0)


# --- CSV ---------------------------------------------------------------------------------


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(group_id: str, limit: int) -> Iterator[str]:
    """The header, then one line per member by position (at most `limit`): a
    batch-results report. Cells a spreadsheet would run as formulas are quoted."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    rows = (
        Job.objects.in_group(group_id)
        .filter(group_index__isnull=False)
        .order_by("group_index", "id")
        .values_list("task_id", "group_index", "status", "error", "started_at", "finished_at")
    )
    for task_id, position, status, error, started, finished in rows[:limit].iterator(
        chunk_size=2000
    ):
        final = status in lifecycle.TERMINAL
        duration = (
            (finished - started) // MILLISECOND
            if final and started and finished and finished >= started
            else None
        )
        yield writer.writerow(
            [
                safe_cell(task_id),
                position,
                status,
                safe_cell(error or ""),
                "" if duration is None else duration,
                finished.isoformat() if final and finished else "",
            ]
        )
