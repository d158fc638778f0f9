"""bench.layer_db on a preloaded table: the per-round reset deletes the rounds' rows only.

Against the real PostgreSQL on 127.0.0.1:5432 (skipped when none answers), in a database
of the test's own (tests/bench/conftest.py). The preload is bench.scale's loader, so a
loader that no longer fits the Job table fails here too.
"""

from __future__ import annotations

import pytest

from bench import scale
from bench.layer_db import BENCH_TASK, PRELOADED_JOB_ID_ENV, PRELOADED_RESULT_ID_ENV
from tests.bench.postgres import run

psycopg = pytest.importorskip("psycopg")

GENERATED_JOBS = 1000
# The load adds the jobs in flight (STARTED, SENT, RECEIVED) after the finished ones.
PRELOADED_JOBS = GENERATED_JOBS + scale.RUNNING_ROWS + scale.QUEUED_ROWS


def add_rows(conn: psycopg.Connection, jobs: int, results: int, prefix: str) -> None:
    """Job rows copied from preloaded ones under new task ids; minimal TaskResult rows."""
    columns = [
        name
        for (name,) in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'tasklayer_job' AND column_name <> 'id'"
        )
    ]
    chosen = ", ".join(f"%s || {c}" if c == "task_id" else c for c in columns)
    conn.execute(
        f"INSERT INTO tasklayer_job ({', '.join(columns)}) "  # noqa: S608 (catalog names)
        f"SELECT {chosen} FROM tasklayer_job ORDER BY id LIMIT %s",
        [prefix, jobs],
    )
    for k in range(results):
        conn.execute(
            "INSERT INTO django_celery_results_taskresult "
            "(task_id, status, content_type, content_encoding, date_done, date_created) "
            "VALUES (%s, 'SUCCESS', 'application/json', 'utf-8', now(), now())",
            [f"{prefix}{k}"],
        )


def add_beside(conn: psycopg.Connection, prefix: str) -> None:
    """What the recorder writes beside a round's jobs: their attempts, a noop tally."""
    conn.execute(
        "INSERT INTO tasklayer_jobattempt (key, task_id, number, status, worker, started_at, "
        "finished_at, error) SELECT task_id || ':1', task_id, 1, status, worker, started_at, "
        "finished_at, '' FROM tasklayer_job WHERE task_id LIKE %s",
        [f"{prefix}%"],
    )
    for period in ("m", "h"):
        conn.execute(
            "INSERT INTO tasklayer_jobtally (period, start, name, queue, status, count, "
            "run_ms_total, run_ms_max, run_count, wait_ms_total, wait_ms_max, wait_count) "
            "VALUES (%s, date_trunc('hour', now()), %s, 'default', 'SUCCESS', 3, 0, 0, 0, 0, "
            "0, 0) ON CONFLICT DO NOTHING",
            [period, BENCH_TASK],
        )


def beside_counts(conn: psycopg.Connection) -> tuple[int, int]:
    """(attempt rows, tally rows) in the database."""
    attempts = conn.execute("SELECT count(*) FROM tasklayer_jobattempt").fetchone()
    tallies = conn.execute("SELECT count(*) FROM tasklayer_jobtally").fetchone()
    assert attempts is not None
    assert tallies is not None
    return attempts[0], tallies[0]


def add_outbox_message(conn: psycopg.Connection, task_id: str) -> None:
    """A message due now, as bench.transaction_floor used to leave them behind."""
    conn.execute(
        "INSERT INTO tasklayer_outboxmessage (task_id, name, args, kwargs, options, due_at, "
        "claimed_at, attempts, last_error, created_at) "
        "VALUES (%s, 'tasks.demo.noop', '[1]', '{}', '{}', now(), NULL, 0, '', now())",
        [task_id],
    )


def outbox_messages(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM tasklayer_outboxmessage").fetchone()
    assert row is not None
    return int(row[0])


def counts(conn: psycopg.Connection) -> tuple[int, int]:
    jobs = conn.execute("SELECT count(*) FROM tasklayer_job").fetchone()
    results = conn.execute("SELECT count(*) FROM django_celery_results_taskresult").fetchone()
    assert jobs is not None
    assert results is not None
    return jobs[0], results[0]


def test_reset_deletes_only_rows_above_the_marks(database_url: str) -> None:
    run(database_url, "manage.py", "migrate", "--no-input", "-v", "0")
    scale.load(database_url, GENERATED_JOBS)
    with psycopg.connect(database_url, autocommit=True) as conn:
        add_rows(conn, jobs=0, results=2, prefix="preloaded-")
        marks_line = run(database_url, "-m", "bench.layer_db", "mark")
        marks = dict(part.split("=") for part in marks_line.split())
        env = {PRELOADED_JOB_ID_ENV: marks["jobs"], PRELOADED_RESULT_ID_ENV: marks["results"]}
        assert counts(conn) == (PRELOADED_JOBS, 2)
        assert run(database_url, "-m", "bench.layer_db", "rows", marks=env) == "jobs=0 results=0"
        preloaded_beside = beside_counts(conn)
        assert preloaded_beside[0] == GENERATED_JOBS + scale.RUNNING_ROWS  # each started once

        for round_number in (1, 2):  # ids keep rising: the second round is above the mark too
            add_rows(conn, jobs=3, results=2, prefix=f"round{round_number}-")
            add_outbox_message(conn, f"left-by-round{round_number}")
            add_beside(conn, f"round{round_number}-")
            assert beside_counts(conn) == (preloaded_beside[0] + 3, preloaded_beside[1] + 2)
            assert run(database_url, "-m", "bench.layer_db", "rows", marks=env) == (
                "jobs=3 results=2"
            )
            run(database_url, "-m", "bench.layer_db", "reset", marks=env)
            assert counts(conn) == (PRELOADED_JOBS, 2)
            # The next worker would publish a message left in the outbox into the round.
            assert outbox_messages(conn) == 0
            assert beside_counts(conn) == preloaded_beside
            assert run(database_url, "-m", "bench.layer_db", "rows", marks=env) == (
                "jobs=0 results=0"
            )

        # Without the marks, `rows` sees everything and `reset` empties both tables.
        assert run(database_url, "-m", "bench.layer_db", "rows") == (
            f"jobs={PRELOADED_JOBS} results=2"
        )
        add_outbox_message(conn, "left-before-reset")
        run(database_url, "-m", "bench.layer_db", "reset")
        assert counts(conn) == (0, 0)
        assert outbox_messages(conn) == 0
        assert beside_counts(conn) == (0, 0)
