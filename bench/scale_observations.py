"""What a deployment's recorder writes beside its job rows, computed from the loaded rows.

A table of 10 million jobs that a real deployment recorded comes with what the recorder
wrote as those jobs ran (tasks.record): an attempt row per job that started, the
tallies of finished jobs per minute, hour and day by task and queue with their timing
histograms, the same per status across all tasks (tasks.record.tallies), a failure
group per fingerprint with its hourly tally, and the workers' heartbeats. The dashboard
reads those, so the bench's load must hold them, or its pages would be timed on tables a
deployment never has.

Each is one INSERT ... SELECT ... GROUP BY on the server over the loaded job rows, with
the definitions of tasks.record.tallies:

- a job counts once, when it reached a final status, under the minute, the hour and the
  day of its `finished_at` (UTC);
- run = finished - started, wait = started - sent, in whole milliseconds as `_ms`
  computes them (floored, exactly: `ms_sql`), none when either
  end is missing or the interval is negative;
- the histogram bucket is `bisect_left(BUCKET_BOUNDS_MS, ms)`: for an integer ms that
  is `width_bucket(ms - 1, bounds)`, the number of bounds at or below ms - 1, that is
  strictly below ms (`bucket_sql`; tests/unit/bench checks it on the edges);
- hour and day rows for all 30 days, minute rows only for the last two (retention
  keeps minute rows two days: tasks.operations.retention.KEEP_MINUTE_TALLIES);
- a failure group's sample is its latest failure.

Two full scans of the job table (hours, and the hours' histograms); the minutes read
two days through the created_at index. Day rows are the sums of their UTC hours and the
per-status rows the sums of the task rows, so they are added up from those rather than
from the jobs again: the same numbers, from a few hundred thousand rows.

The constants below are copies of the layer's (the loader runs where Django is not set
up); tests/unit/bench/test_scale_observations.py checks they still match.
"""

from __future__ import annotations

import time
from typing import Any

# tasks.observations.BUCKET_BOUNDS_MS
BUCKET_BOUNDS_MS: tuple[int, ...] = (
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    1_800_000,
    3_600_000,
)
# tasks.lifecycle.TERMINAL
TERMINAL: tuple[str, ...] = ("FAILURE", "REVOKED", "SUCCESS")
# tasks.operations.retention.KEEP_MINUTE_TALLIES, in days
MINUTE_TALLY_DAYS = 2
# tasks.observations.Period
HOUR, MINUTE, DAY = "h", "m", "d"
UNITS = {MINUTE: "minute", HOUR: "hour", DAY: "day"}


def ms_sql(start: str, end: str) -> str:
    """SQL for tasks.record.tallies._ms(start, end): whole milliseconds, floored, exact
    (`extract(epoch ...)` is numeric, not a double); NULL where `_ms` gives None."""
    return (
        f"CASE WHEN {start} IS NOT NULL AND {end} IS NOT NULL AND {end} >= {start} "
        f"THEN floor(extract(epoch FROM {end} - {start}) * 1000)::bigint END"
    )


def bucket_sql(ms: str) -> str:
    """SQL for tasks.record.tallies.bucket_of(ms), for an integer ms."""
    bounds = ", ".join(str(bound) for bound in BUCKET_BOUNDS_MS)
    return f"width_bucket({ms} - 1, ARRAY[{bounds}]::bigint[])"


def finished_jobs_sql(since: str | None = None) -> str:
    """The finished jobs as the tallies see them: (name, queue, status, at, run_ms,
    wait_ms, fingerprint, ...), all of them or those finished since `since` (SQL).

    `created_at` bounds the minute rows' scan too (through the job_created index): a
    generated job finishes within seconds of its creation, an hour's margin is plenty.
    """
    terminal = ", ".join(f"'{status}'" for status in TERMINAL)
    window = (
        f" AND finished_at >= {since} AND created_at >= {since} - interval '1 hour'"
        if since
        else ""
    )
    return (
        "SELECT name, queue, status, finished_at AS at, "  # noqa: S608 (our own SQL)
        f"{ms_sql('started_at', 'finished_at')} AS run_ms, "
        f"{ms_sql('sent_at', 'started_at')} AS wait_ms "
        f"FROM tasklayer_job WHERE status IN ({terminal}) AND finished_at IS NOT NULL{window}"
    )


def job_tally_sql(period: str, since: str | None) -> str:
    unit = UNITS[period]
    return (
        "INSERT INTO tasklayer_jobtally (period, start, name, queue, status, count, "  # noqa: S608
        "run_ms_total, run_ms_max, run_count, wait_ms_total, wait_ms_max, wait_count) "
        f"SELECT '{period}', date_trunc('{unit}', at), name, queue, status, count(*), "
        "coalesce(sum(run_ms), 0), coalesce(max(run_ms), 0), count(run_ms), "
        "coalesce(sum(wait_ms), 0), coalesce(max(wait_ms), 0), count(wait_ms) "
        f"FROM ({finished_jobs_sql(since)}) AS f GROUP BY 2, 3, 4, 5"
    )


def timing_tally_sql(period: str, since: str | None) -> str:
    unit = UNITS[period]
    return (
        "INSERT INTO tasklayer_timingtally (period, start, name, measure, bucket, count) "  # noqa: S608
        f"SELECT '{period}', date_trunc('{unit}', f.at), f.name, m.measure, "
        f"{bucket_sql('m.ms')}, count(*) "
        f"FROM ({finished_jobs_sql(since)}) AS f "
        "CROSS JOIN LATERAL (VALUES ('run', f.run_ms), ('wait', f.wait_ms)) AS m(measure, ms) "
        "WHERE m.ms IS NOT NULL GROUP BY 2, 3, 4, 5"
    )


# A day's rows: the sums of its 24 hour rows (maxima of maxima).
JOB_TALLY_DAYS_SQL = """
INSERT INTO tasklayer_jobtally (period, start, name, queue, status, count, run_ms_total,
    run_ms_max, run_count, wait_ms_total, wait_ms_max, wait_count)
SELECT 'd', date_trunc('day', start), name, queue, status, sum(count), sum(run_ms_total),
    max(run_ms_max), sum(run_count), sum(wait_ms_total), max(wait_ms_max), sum(wait_count)
FROM tasklayer_jobtally WHERE period = 'h' GROUP BY 2, 3, 4, 5
"""
TIMING_TALLY_DAYS_SQL = """
INSERT INTO tasklayer_timingtally (period, start, name, measure, bucket, count)
SELECT 'd', date_trunc('day', start), name, measure, bucket, sum(count)
FROM tasklayer_timingtally WHERE period = 'h' GROUP BY 2, 3, 4, 5
"""
# Per status across every task and queue: the sums of the task rows, in every period.
STATUS_TALLY_SQL = """
INSERT INTO tasklayer_statustally (period, start, status, count)
SELECT period, start, status, sum(count) FROM tasklayer_jobtally GROUP BY 1, 2, 3
"""
# One group per fingerprint, its sample the latest failure. The exception is the class
# before the error's first colon and the frame the innermost application frame, as
# tasks.record.fingerprint reads them from the generated error and traceback.
FAILURE_GROUP_SQL = """
INSERT INTO tasklayer_failuregroup (fingerprint, name, exception, frame, count, first_seen,
    last_seen, sample_task_id, sample_error, sample_traceback)
SELECT DISTINCT ON (j.fingerprint)
    j.fingerprint, j.name, split_part(j.error, ':', 1),
    'shop/tasks.py:' || split_part(j.name, '.', 3),
    g.n, g.first_seen, g.last_seen, j.task_id, j.error, j.traceback
FROM tasklayer_job j
JOIN (
    SELECT fingerprint, count(*) AS n, min(finished_at) AS first_seen,
           max(finished_at) AS last_seen
    FROM tasklayer_job WHERE status = 'FAILURE' AND fingerprint <> '' GROUP BY fingerprint
) AS g USING (fingerprint)
WHERE j.status = 'FAILURE' AND j.fingerprint <> ''
ORDER BY j.fingerprint, j.finished_at DESC
"""
FAILURE_TALLY_SQL = """
INSERT INTO tasklayer_failuretally (start, fingerprint, queue, count, last_seen)
SELECT date_trunc('hour', finished_at), fingerprint, queue, count(*), max(finished_at)
FROM tasklayer_job WHERE status = 'FAILURE' AND fingerprint <> ''
GROUP BY 1, 2, 3
"""
# One attempt per job that started (tasks.record.service's ATTEMPT_PLAN: key
# "<task id>:<number>", the attempt's outcome as its status).
ATTEMPTS_SQL = """
INSERT INTO tasklayer_jobattempt (key, task_id, number, status, worker, started_at,
    finished_at, error, next_attempt_at)
SELECT task_id || ':1', task_id, 1, status, worker, started_at, finished_at, error, NULL
FROM tasklayer_job WHERE started_at IS NOT NULL
"""
WORKER_BEATS_SQL = """
INSERT INTO tasklayer_workerbeat (hostname, pid, pool, concurrency, queues, started_at,
    last_seen_at, stopped_at, processed, failed)
SELECT 'worker-' || k || '@host', 1000 + k, 'prefork', 4,
       '["default", "high", "low"]'::jsonb, now() - interval '30 days', now(), NULL, 0, 0
FROM generate_series(0, %(workers)s - 1) AS k
"""
# One row per group, counted as the recorder counts them (tasks.record: FAILURE is
# failed, REVOKED cancelled).
BATCHES_SQL = """
INSERT INTO tasklayer_batch (group_id, kind, name, callback_id, total, succeeded, failed,
    cancelled, created_at, last_finished_at)
SELECT group_id, 'group', CASE WHEN count(DISTINCT name) = 1 THEN min(name) ELSE 'mixed' END,
       '', count(*), count(*) FILTER (WHERE status = 'SUCCESS'),
       count(*) FILTER (WHERE status = 'FAILURE'), count(*) FILTER (WHERE status = 'REVOKED'),
       min(created_at), max(finished_at)
FROM tasklayer_job WHERE group_id <> '' GROUP BY group_id
"""
OBSERVATION_TABLES = (
    "tasklayer_batch",
    "tasklayer_jobtally",
    "tasklayer_statustally",
    "tasklayer_timingtally",
    "tasklayer_failuregroup",
    "tasklayer_failuretally",
    "tasklayer_workerbeat",
)


def minutes_since() -> str:
    """The first minute whose tally rows retention still keeps (SQL)."""
    return f"date_trunc('minute', now() - interval '{MINUTE_TALLY_DAYS} days')"


def write_attempts(conn: Any) -> None:
    conn.execute(ATTEMPTS_SQL)


def write_observations(conn: Any, workers: int) -> dict[str, float]:
    """The tallies, failure groups and heartbeats of the loaded jobs; seconds per step.

    `conn` is a psycopg connection in autocommit, after VACUUM ANALYZE of the job table
    (the minute rows' scans then take the created_at index).
    """
    timings: dict[str, float] = {}
    conn.execute("SET TIME ZONE 'UTC'")  # date_trunc of timestamptz: the recorder's UTC
    conn.execute("SET work_mem = '256MB'")  # the hour groups' hash tables fit in memory
    steps = {
        "job_tallies_s": [
            job_tally_sql(HOUR, None),
            job_tally_sql(MINUTE, minutes_since()),
            JOB_TALLY_DAYS_SQL,
            STATUS_TALLY_SQL,
        ],
        "timing_tallies_s": [
            timing_tally_sql(HOUR, None),
            timing_tally_sql(MINUTE, minutes_since()),
            TIMING_TALLY_DAYS_SQL,
        ],
        "failures_s": [FAILURE_GROUP_SQL, FAILURE_TALLY_SQL],
        "batches_s": [BATCHES_SQL],
    }
    for label, statements in steps.items():
        started = time.monotonic()
        for statement in statements:
            conn.execute(statement)
        timings[label] = time.monotonic() - started
    conn.execute(WORKER_BEATS_SQL.replace("%(workers)s", str(workers)))
    started = time.monotonic()
    for table in OBSERVATION_TABLES:
        conn.execute(f"VACUUM ANALYZE {table}")
    timings["analyze_observations_s"] = time.monotonic() - started
    return timings
