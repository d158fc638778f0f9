"""The tallies' arithmetic: exact milliseconds and histogram buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tasks.observations import BUCKET_BOUNDS_MS
from tasks.record.tallies import _ms, bucket_of

START = datetime(2026, 12, 6, tzinfo=UTC)


def test_milliseconds_are_exact_and_floored() -> None:
    assert _ms(START, START + timedelta(seconds=1.001)) == 1001
    assert _ms(START, START + timedelta(microseconds=999)) == 0
    assert _ms(START, START - timedelta(milliseconds=1)) is None
    assert _ms(None, START) is None


def test_a_duration_falls_in_the_first_bucket_whose_bound_it_does_not_exceed() -> None:
    assert bucket_of(0) == 0
    assert bucket_of(5) == 0
    assert bucket_of(6) == 1
    assert bucket_of(BUCKET_BOUNDS_MS[-1]) == len(BUCKET_BOUNDS_MS) - 1
    assert bucket_of(BUCKET_BOUNDS_MS[-1] + 1) == len(BUCKET_BOUNDS_MS)  # the open bucket
