"""Failure groups seen in a window: how often each failed, where, and a sample.

FailureTally keeps one row per group, queue and hour, so "the groups of the last 24
hours" sums a day of those rows (a range of its (start, ...) unique index) instead of
reading failed job rows; the groups' own rows (one per fingerprint) add the task,
exception, frame, totals and the latest failure as a sample. Hours are the tallies'
finest grain: the window starts on the hour, and says so (`start`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Sum
from django.utils import timezone

from dashboard.read.buckets import floor
from dashboard.read.windows import HOUR
from tasks.models import FailureGroup, FailureTally

#: The most groups a page lists (the busiest first; the quieter ones are counted, and
#: the explorer finds them by fingerprint): each is a panel with its sample traceback,
#: re-rendered on every live refresh.
GROUP_LIMIT = 50


@dataclass(frozen=True, slots=True)
class FailureGroupSeen:
    fingerprint: str
    name: str
    exception: str
    frame: str
    count: int
    """Failures in the window."""
    total: int
    """Failures since the group was first seen."""
    first_seen: datetime
    last_seen: datetime
    queues: tuple[str, ...]
    """The queues its failures in the window came from."""
    sample_task_id: str
    sample_error: str
    sample_traceback: str

    @property
    def q(self) -> str:
        """The explorer filter listing its jobs."""
        return f"fingerprint:{self.fingerprint}"


@dataclass(frozen=True, slots=True)
class FailureGroups:
    start: datetime
    """The window's actual start (on the hour)."""
    groups: tuple[FailureGroupSeen, ...]
    more: int
    """Groups seen in the window beyond the GROUP_LIMIT listed."""

    @property
    def failures(self) -> int:
        return sum(group.count for group in self.groups)


def failure_groups(
    span: timedelta, now: datetime | None = None, name: str | None = None
) -> FailureGroups:
    """The groups that failed in the last `span` (of task `name` when given), the most
    failures in the window first."""
    start = floor((now or timezone.now()) - span, HOUR)
    counts: dict[str, int] = {}
    queues: dict[str, set[str]] = {}
    rows = (
        FailureTally.objects.filter(start__gte=start)
        .order_by()
        .values("fingerprint", "queue")
        .annotate(total=Sum("count"))
    )
    for row in rows:
        key = row["fingerprint"]
        counts[key] = counts.get(key, 0) + int(row["total"] or 0)
        queues.setdefault(key, set()).add(row["queue"])
    busiest = sorted(counts, key=lambda key: -counts[key])
    if name is None:
        busiest = busiest[:GROUP_LIMIT]  # the samples of only the groups listed
    groups = FailureGroup.objects.filter(fingerprint__in=busiest)
    if name is not None:
        groups = groups.filter(name=name)
    found = [
        FailureGroupSeen(
            fingerprint=group.fingerprint,
            name=group.name,
            exception=group.exception,
            frame=group.frame,
            count=counts[group.fingerprint],
            total=group.count,
            first_seen=group.first_seen,
            last_seen=group.last_seen,
            queues=tuple(sorted(q for q in queues[group.fingerprint] if q)),
            sample_task_id=group.sample_task_id,
            sample_error=group.sample_error,
            sample_traceback=group.sample_traceback,
        )
        for group in groups
    ]
    found.sort(key=lambda g: (-g.count, -g.last_seen.timestamp(), g.fingerprint))
    more = len(counts) - len(busiest) if name is None else max(0, len(found) - GROUP_LIMIT)
    return FailureGroups(start, tuple(found[:GROUP_LIMIT]), more)
