"""Time buckets for charts: every bucket of a range, zero where nothing happened.

The tallies only have rows for minutes and hours in which some job finished, so a chart
fed straight from them would skip quiet periods and stretch the busy ones together.
These helpers lay out every bucket of a range and fill the missing ones with zeros.

Pure: no Django, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor(moment: datetime, step: timedelta) -> datetime:
    """The start of the bucket of width `step` holding `moment` (aligned on the epoch,
    in UTC, like the recorder's minutes and hours)."""
    return moment - (moment - EPOCH) % step


def bucket_starts(first: datetime, last: datetime, step: timedelta) -> list[datetime]:
    """Starts of every bucket from the one holding `first` to the one holding `last`."""
    start, end = floor(first, step), floor(last, step)
    count = (end - start) // step + 1
    return [start + i * step for i in range(max(0, count))]


def fill(starts: Sequence[datetime], values: Mapping[datetime, int]) -> list[int]:
    """The value of each bucket start, 0 for those with none."""
    return [values.get(start, 0) for start in starts]


def regroup(values: Mapping[datetime, int], step: timedelta) -> dict[datetime, int]:
    """Values of finer buckets (minutes, hours) added up into buckets of `step`."""
    grouped: dict[datetime, int] = {}
    for start, value in values.items():
        key = floor(start, step)
        grouped[key] = grouped.get(key, 0) + value
    return grouped
