"""bench.scale's load writes beside its jobs exactly what the recorder would have.

The loader computes the tallies, failure groups and attempts on the server with SQL
(bench.scale_observations). Here the same finished jobs go through the recorder's own
code (tasks.record.tallies.Finishing.add, on the test database) and both sets of rows
must be equal: a change to the recorder's definitions that the loader does not follow
fails here. Against the real PostgreSQL on 127.0.0.1:5432 (skipped when none answers).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench import scale, scale_observations
from tasks.models import FailureGroup, FailureTally, JobTally, StatusTally, TimingTally
from tasks.record.fingerprint import fingerprint
from tasks.record.tallies import Finished, Finishing, _ms, bucket_of
from tests.bench.postgres import run

psycopg = pytest.importorskip("psycopg")

GENERATED_JOBS = 4000  # one every 11 minutes over 30 days: ~260 in the minute rows' 2 days
JOB_TALLY = (
    *("period", "start", "name", "queue", "status", "count", "run_ms_total", "run_ms_max"),
    *("run_count", "wait_ms_total", "wait_ms_max", "wait_count"),
)
TIMING_TALLY = ("period", "start", "name", "measure", "bucket", "count")
STATUS_TALLY = ("period", "start", "status", "count")
FAILURE_GROUP = (
    *("fingerprint", "name", "exception", "frame", "count", "first_seen", "last_seen"),
    *("sample_task_id", "sample_error", "sample_traceback"),
)
FAILURE_TALLY = ("start", "fingerprint", "queue", "count", "last_seen")


def loaded(conn: Any, table: str, columns: Sequence[str]) -> set[tuple[Any, ...]]:
    rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()  # noqa: S608
    return {tuple(row) for row in rows}


def recorded(model: Any, columns: Sequence[str]) -> set[tuple[Any, ...]]:
    return set(model.objects.values_list(*columns))


def chunks(items: Sequence[Finished], size: int) -> Iterable[Sequence[Finished]]:
    """The recorder's batches: its upserts add each batch to what earlier ones wrote."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def as_recorder_sees(row: tuple[Any, ...]) -> Finished:
    task_id, name, queue, status, sent, started, ended, key, error, traceback = row
    item = Finished(
        name=name,
        queue=queue,
        status=status,
        at=ended,
        run_ms=_ms(started, ended),
        wait_ms=_ms(sent, started),
    )
    if status != "FAILURE":
        return item
    # The loader's key stands in for the real one (md5 in SQL, not sha1); the exception
    # class and frame are the recorder's reading of the generated error and traceback.
    found = fingerprint(name, error, traceback)
    return replace(
        item,
        fingerprint=key,
        exception=found.exception,
        frame=found.frame,
        task_id=task_id,
        error=error,
        traceback=traceback,
    )


@pytest.mark.django_db
def test_the_loads_tallies_failure_groups_and_attempts_are_the_recorders(
    database_url: str,
) -> None:
    run(database_url, "manage.py", "migrate", "--no-input", "-v", "0")
    scale.load(database_url, GENERATED_JOBS)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        jobs = conn.execute(
            "SELECT task_id, name, queue, status, sent_at, started_at, finished_at, "
            "fingerprint, error, traceback FROM tasklayer_job "
            "WHERE status IN ('SUCCESS', 'FAILURE', 'REVOKED') ORDER BY id"
        ).fetchall()
        tables = {
            "job": loaded(conn, "tasklayer_jobtally", JOB_TALLY),
            "timing": loaded(conn, "tasklayer_timingtally", TIMING_TALLY),
            "status": loaded(conn, "tasklayer_statustally", STATUS_TALLY),
            "groups": loaded(conn, "tasklayer_failuregroup", FAILURE_GROUP),
            "failures": loaded(conn, "tasklayer_failuretally", FAILURE_TALLY),
        }
        attempts = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE a.status = j.status "
            "AND a.started_at = j.started_at AND a.finished_at IS NOT DISTINCT FROM "
            "j.finished_at AND a.key = j.task_id || ':1') FROM tasklayer_jobattempt a "
            "JOIN tasklayer_job j USING (task_id)"
        ).fetchone()
        started = conn.execute(
            "SELECT count(*) FROM tasklayer_job WHERE started_at IS NOT NULL"
        ).fetchone()
        batches = conn.execute(
            "SELECT group_id, total, succeeded + failed + cancelled FROM tasklayer_batch"
        ).fetchall()
        members = conn.execute(
            "SELECT count(*), min(group_index), max(group_index) FROM tasklayer_job "
            "WHERE group_id = 'bench-batch-0'"
        ).fetchone()
    assert len(jobs) == GENERATED_JOBS
    for batch in chunks([as_recorder_sees(row) for row in jobs], 200):
        Finishing(list(batch)).add()

    # Minute rows only for the kept two days (retention deletes older ones).
    first_minute = min(row[1] for row in tables["job"] if row[0] == "m")
    kept_from = datetime.now(UTC) - timedelta(days=scale_observations.MINUTE_TALLY_DAYS)
    assert abs(first_minute - kept_from) < timedelta(minutes=15)

    def kept(rows: set[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
        return {row for row in rows if row[0] != "m" or row[1] >= first_minute}

    assert tables["job"] == kept(recorded(JobTally, JOB_TALLY))
    assert tables["timing"] == kept(recorded(TimingTally, TIMING_TALLY))
    assert tables["status"] == kept(recorded(StatusTally, STATUS_TALLY))
    assert {row[0] for row in tables["job"]} == {"m", "h", "d"}
    assert tables["groups"] == recorded(FailureGroup, FAILURE_GROUP)
    assert tables["failures"] == recorded(FailureTally, FAILURE_TALLY)
    assert len(tables["groups"]) == 2 * len(scale.NAMES)  # ValueError, TimeoutError per task
    assert attempts is not None
    assert started is not None
    assert attempts[0] == attempts[1] == started[0]
    # Fewer jobs than a block: all of them are block 0's batch, finished, in order.
    assert batches == [("bench-batch-0", GENERATED_JOBS, GENERATED_JOBS)]
    assert members == (GENERATED_JOBS, 0, GENERATED_JOBS - 1)


@pytest.mark.parametrize("ms", [0, 1, 4, 5, 6, 999, 1000, 1001, 1003, 2002, 3_600_000, 3_600_001])
def test_the_sql_bucket_and_milliseconds_are_the_recorders_on_the_server(
    database_url: str, ms: int
) -> None:
    begin = datetime(2026, 12, 1, 10, 0, 0, 123000, tzinfo=UTC)
    end = begin + timedelta(milliseconds=ms)
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT {scale_observations.ms_sql('%(begin)s', '%(end)s')}, "
            f"{scale_observations.bucket_sql('%(ms)s::bigint')}",
            {"begin": begin, "end": end, "ms": ms},
        ).fetchone()
    assert row == (_ms(begin, end), bucket_of(ms))
