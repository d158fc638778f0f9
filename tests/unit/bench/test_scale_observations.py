"""bench.scale's load: the recorder's definitions as the loader's SQL spells them.

Pure: the loader's constants against the layer's, and the SQL's arithmetic modelled as
PostgreSQL documents it (tests/bench/test_scale_observations.py runs the same edges on
a real server and compares whole loads with the recorder's own tallies).
"""

from __future__ import annotations

import bisect
import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from bench import scale, scale_observations
from tasks import lifecycle
from tasks.models import Job
from tasks.observations import BUCKET_BOUNDS_MS, Period
from tasks.operations.retention import KEEP_MINUTE_TALLIES
from tasks.record.tallies import PERIODS, _ms, bucket_of

EPOCH = datetime(2026, 12, 1, tzinfo=UTC)
EDGES = sorted(
    {0, 1, 2, 10**9}
    | {bound + delta for bound in BUCKET_BOUNDS_MS for delta in (-1, 0, 1)}
    | {1001, 1003, 2002, 57, 999}
)


def width_bucket(operand: int, thresholds: tuple[int, ...]) -> int:
    """PostgreSQL's width_bucket(operand, thresholds): "the number of the bucket in which
    the operand falls, given an array listing the lower bounds of the buckets; 0 for an
    input less than the first lower bound" (the documentation), i.e. how many bounds are
    at or below the operand."""
    return bisect.bisect_right(thresholds, operand)


def test_the_loader_copies_the_layers_constants() -> None:
    assert scale_observations.BUCKET_BOUNDS_MS == BUCKET_BOUNDS_MS
    assert set(scale_observations.TERMINAL) == set(lifecycle.TERMINAL)
    assert timedelta(days=scale_observations.MINUTE_TALLY_DAYS) == KEEP_MINUTE_TALLIES
    assert {scale_observations.HOUR, scale_observations.MINUTE, scale_observations.DAY} == set(
        Period.values
    )
    assert [scale_observations.UNITS[period] for period, _ in PERIODS] == [
        unit for _, unit in PERIODS
    ]


@pytest.mark.parametrize("ms", EDGES)
def test_width_bucket_of_ms_minus_one_is_the_recorders_bucket(ms: int) -> None:
    assert width_bucket(ms - 1, BUCKET_BOUNDS_MS) == bucket_of(ms)


def test_the_bucket_sql_lists_every_bound_in_order() -> None:
    sql = scale_observations.bucket_sql("m.ms")
    assert sql.startswith("width_bucket(m.ms - 1, ARRAY[5, 10, 25,")
    assert sql.endswith("3600000]::bigint[])")


@pytest.mark.parametrize("microseconds", [0, 999, 1000, 1_001_000, 1_015_000, 2_030_000, 20_500])
def test_ms_sql_floors_exact_milliseconds_as_the_recorder_does(microseconds: int) -> None:
    # extract(epoch ...) is an exact numeric: floor(seconds * 1000) has no rounding.
    as_sql = math.floor(Fraction(microseconds, 10**6) * 1000)
    assert as_sql == _ms(EPOCH, EPOCH + timedelta(microseconds=microseconds))
    assert "floor(extract(epoch FROM" in scale_observations.ms_sql("a", "b")


def test_ms_sql_is_null_where_the_recorder_has_no_time() -> None:
    sql = scale_observations.ms_sql("started_at", "finished_at")
    assert "started_at IS NOT NULL AND finished_at IS NOT NULL" in sql
    assert "finished_at >= started_at" in sql  # a negative interval counts nothing
    assert _ms(EPOCH, EPOCH - timedelta(seconds=1)) is None


def test_minute_rows_are_built_only_for_the_kept_days() -> None:
    minutes = scale_observations.job_tally_sql(Period.MINUTE, scale_observations.minutes_since())
    hours = scale_observations.job_tally_sql(Period.HOUR, None)
    assert "now() - interval '2 days'" in minutes
    assert "date_trunc('minute', at)" in minutes
    assert "finished_at >= date_trunc" not in hours
    assert "date_trunc('hour', at)" in hours


def test_every_task_name_fails_and_is_revoked_at_the_same_rate() -> None:
    rows = 20 * 100 * 5
    kinds = [scale.kind_of(i) for i in range(rows)]
    for name in range(len(scale.NAMES)):
        mine = kinds[name :: len(scale.NAMES)]
        assert sum(kind in scale.FAILED for kind in mine) / len(mine) == 0.04
        assert sum(kind == scale.FAILED_TIMEOUT for kind in mine) / len(mine) == 0.01
        assert sum(kind == scale.REVOKED for kind in mine) / len(mine) == 0.02


def test_staging_rows_carry_wait_and_run_times_within_their_spread() -> None:
    lines = "".join(scale.staging_rows(1000, now_ms=10**12)).splitlines()
    assert len(lines) == 1000
    fields = [[int(value) for value in line.split("\t")] for line in lines]
    assert all(5 <= wait <= 404 and 20 <= run <= 2019 for _, _, wait, run, _ in fields)
    assert [created for _, created, *_ in fields] == sorted(created for _, created, *_ in fields)
    assert fields[-1][1] < 10**12


def test_fill_sql_leaves_no_placeholder() -> None:
    for template in (scale.FILL_SQL, scale.UNFINISHED_SQL):
        sql = scale.fill_sql(template, rows=1000)
        assert "%(" not in sql
        # Django's defaults are not the database's: every NOT NULL column is given.
        named = sql.split("INSERT INTO tasklayer_job (", 1)[1].split(")", 1)[0]
        columns = {column.strip() for column in named.split(",")}
        required = {f.column for f in Job._meta.concrete_fields if not f.null and f.column != "id"}
        assert required <= columns
