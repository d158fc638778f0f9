"""The time windows a page offers (1 h, 24 h, 7 d, 30 d) and which tally rows cover them.

The recorder tallies finished jobs per minute, hour and day (the same jobs in each,
days in UTC), and keeps minute rows for two days. A window ending now is read as whole
hours where it can (a 24-hour window is 23 hour rows instead of 1,440 minute rows per
task) and minutes at its ragged ends, so its count is exact to the minute. Windows
longer than a day start on the hour (the page shows the start it actually used) and
read whole days as day rows, hours at their ends: 30 days are 30 day rows and at most
48 hour rows per task instead of 720.

Pure: no Django, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dashboard.read.buckets import floor

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

# tasks.observations.Period's values, spelt out so this module stays pure (a unit test
# checks that they agree).
MINUTE_ROWS = "m"
HOUR_ROWS = "h"
DAY_ROWS = "d"

#: The longest window read with minute rows at its ends (they are kept two days).
MINUTES_WITHIN = DAY


@dataclass(frozen=True, slots=True)
class Window:
    """A window a page offers: its query-string key, its label, and the width of the
    buckets its charts use."""

    key: str
    label: str
    span: timedelta
    step: timedelta

    @property
    def step_label(self) -> str:
        """The width of the window's chart buckets, in words ("minute", "hour", "day")."""
        return {MINUTE: "minute", HOUR: "hour", DAY: "day"}.get(self.step, str(self.step))


WINDOWS: tuple[Window, ...] = (
    Window("1h", "1 hour", HOUR, MINUTE),
    Window("24h", "24 hours", DAY, HOUR),
    Window("7d", "7 days", 7 * DAY, HOUR),
    Window("30d", "30 days", 30 * DAY, DAY),
)
DEFAULT_WINDOW = "24h"


def window_named(key: str | None, default: str = DEFAULT_WINDOW) -> Window:
    """The window a query string asks for; the default for a missing or unknown key."""
    by_key = {window.key: window for window in WINDOWS}
    return by_key.get(key or "", by_key[default])


@dataclass(frozen=True, slots=True)
class TallyRange:
    """Tally rows of one period whose start is in [start, end)."""

    period: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Span:
    """[start, end) and the tally ranges that cover it, each job counted once."""

    start: datetime
    end: datetime
    ranges: tuple[TallyRange, ...]


def tally_span(now: datetime, span: timedelta) -> Span:
    """The tally rows covering the last `span` up to `now` (its minute included)."""
    start = floor(now - span, MINUTE)
    end = floor(now, MINUTE) + MINUTE
    if span > MINUTES_WITHIN:
        start = floor(start, HOUR)
        end = floor(now, HOUR) + HOUR
        first_day = floor(start + DAY - HOUR, DAY)  # the first whole day in the window
        last_day = floor(end, DAY)
        if first_day >= last_day:
            return Span(start, end, (TallyRange(HOUR_ROWS, start, end),))
        days = [
            TallyRange(HOUR_ROWS, start, first_day),
            TallyRange(DAY_ROWS, first_day, last_day),
            TallyRange(HOUR_ROWS, last_day, end),
        ]
        return Span(start, end, tuple(r for r in days if r.start < r.end))
    first_hour = floor(start + HOUR - MINUTE, HOUR)  # the first whole hour in the window
    last_hour = floor(end, HOUR)  # the start of the hour `now` is in (when not whole)
    if first_hour >= last_hour:
        return Span(start, end, (TallyRange(MINUTE_ROWS, start, end),))
    ranges = [
        TallyRange(MINUTE_ROWS, start, first_hour),
        TallyRange(HOUR_ROWS, first_hour, last_hour),
        TallyRange(MINUTE_ROWS, last_hour, end),
    ]
    return Span(start, end, tuple(r for r in ranges if r.start < r.end))


def buckets_span(now: datetime, step: timedelta, count: int) -> tuple[datetime, datetime]:
    """First and last bucket start of the `count` buckets of `step` ending with now's."""
    last = floor(now, step)
    return last - (count - 1) * step, last
