"""Chart buckets: every bucket of a range, aligned like the recorder's, zeros filled in;
and the tally rows that cover a window, each job counted once."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from dashboard.read.buckets import bucket_starts, fill, floor, regroup
from dashboard.read.windows import (
    DAY,
    DAY_ROWS,
    HOUR,
    HOUR_ROWS,
    MINUTE,
    MINUTE_ROWS,
    TallyRange,
    tally_span,
    window_named,
)

NOW = datetime(2026, 12, 6, 10, 35, 20, tzinfo=UTC)


def at(hour: int, minute: int = 0, day: int = 6) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def test_floor_aligns_on_minutes_hours_and_days() -> None:
    assert floor(NOW, MINUTE) == at(10, 35)
    assert floor(NOW, HOUR) == at(10)
    assert floor(NOW, DAY) == at(0)
    assert floor(at(10, 35), MINUTE) == at(10, 35)


def test_bucket_starts_cover_both_ends() -> None:
    starts = bucket_starts(at(9, 58), NOW, MINUTE)
    assert starts[0] == at(9, 58)
    assert starts[-1] == at(10, 35)
    assert len(starts) == 38
    assert bucket_starts(NOW, NOW, HOUR) == [at(10)]


def test_fill_puts_zeros_where_no_row_was_written() -> None:
    starts = bucket_starts(at(10), at(10, 4), MINUTE)
    assert fill(starts, {at(10, 1): 3, at(10, 4): 1, at(9): 99}) == [0, 3, 0, 0, 1]


def test_regroup_adds_hours_into_days() -> None:
    hours = {at(1): 2, at(23): 3, at(0, day=7): 5}
    assert regroup(hours, DAY) == {at(0): 5, at(0, day=7): 5}


def test_a_short_window_reads_minute_rows() -> None:
    span = tally_span(NOW, timedelta(minutes=20))
    assert span.start == at(10, 15)
    assert span.ranges == (TallyRange(MINUTE_ROWS, at(10, 15), at(10, 36)),)


def test_the_last_hour_reads_minutes_on_both_sides_of_the_hour() -> None:
    span = tally_span(NOW, HOUR)
    assert span.start == at(9, 35)
    assert span.ranges == (TallyRange(MINUTE_ROWS, at(9, 35), at(10, 36)),)


def test_a_day_reads_whole_hours_and_minutes_at_its_ends() -> None:
    span = tally_span(NOW, DAY)
    assert span.start == at(10, 35, day=5)
    assert span.ranges == (
        TallyRange(MINUTE_ROWS, at(10, 35, day=5), at(11, day=5)),
        TallyRange(HOUR_ROWS, at(11, day=5), at(10)),
        TallyRange(MINUTE_ROWS, at(10), at(10, 36)),
    )


def test_ranges_never_overlap_and_leave_no_gap() -> None:
    for now in (NOW, at(10), at(10, 59), datetime(2026, 12, 6, 23, 59, 59, tzinfo=UTC)):
        for span in (MINUTE, HOUR, 2 * HOUR, DAY, 2 * DAY, 7 * DAY, 30 * DAY):
            ranges = tally_span(now, span).ranges
            assert ranges[0].start == tally_span(now, span).start
            for before, after in itertools.pairwise(ranges):
                assert before.end == after.start
            assert ranges[-1].end > now
            assert all(r.start < r.end for r in ranges)
            # hour rows only for whole hours; minutes only at the ends
            for part in ranges:
                if part.period == HOUR_ROWS:
                    assert floor(part.start, HOUR) == part.start
                    assert floor(part.end, HOUR) == part.end
                if part.period == DAY_ROWS:
                    assert floor(part.start, DAY) == part.start
                    assert floor(part.end, DAY) == part.end


def test_a_week_reads_whole_days_as_day_rows_and_hours_at_its_ends() -> None:
    span = tally_span(NOW, 7 * DAY)
    assert span.start == datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert span.ranges == (
        TallyRange(HOUR_ROWS, span.start, datetime(2026, 11, 30, tzinfo=UTC)),
        TallyRange(DAY_ROWS, datetime(2026, 11, 30, tzinfo=UTC), at(0)),
        TallyRange(HOUR_ROWS, at(0), at(11)),
    )


def test_the_period_values_are_the_layers() -> None:
    from tasks.observations import Period

    assert (MINUTE_ROWS, HOUR_ROWS, DAY_ROWS) == (Period.MINUTE, Period.HOUR, Period.DAY)


@pytest.mark.parametrize(
    ("key", "expected"), [("1h", "1h"), ("30d", "30d"), (None, "24h"), ("", "24h"), ("1y", "24h")]
)
def test_window_named(key: str | None, expected: str) -> None:
    assert window_named(key).key == expected
