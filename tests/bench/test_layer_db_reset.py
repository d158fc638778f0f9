"""bench.layer_db on a preloaded table: the per-round reset deletes the rounds' rows only.

Against the real PostgreSQL on 127.0.0.1:5432 (skipped when none answers), in a database
of the test's own, created and dropped here. The preload is bench.scale's loader, so a
loader that no longer fits the Job table fails here too.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bench import scale
from bench.layer_db import PRELOADED_JOB_ID_ENV, PRELOADED_RESULT_ID_ENV
from bench.processes import ROOT

psycopg = pytest.importorskip("psycopg")

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PRELOADED_JOBS = 1000


def admin_connection() -> psycopg.Connection | None:
    try:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        return None


@pytest.fixture
def database_url() -> Iterator[str]:
    admin = admin_connection()
    if admin is None:
        pytest.skip("no PostgreSQL at 127.0.0.1:5432")
    name = f"bench_reset_test_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(url: str, *args: str, marks: dict[str, str] | None = None) -> str:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BENCH_PRELOADED")},
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SECRET_KEY": "bench-test-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz",
        "DEBUG": "0",
        "DATABASE_URL": url.replace("postgresql://", "postgres://", 1),
        **(marks or {}),
    }
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


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
    scale.load(database_url, PRELOADED_JOBS)
    with psycopg.connect(database_url, autocommit=True) as conn:
        add_rows(conn, jobs=0, results=2, prefix="preloaded-")
        marks_line = run(database_url, "-m", "bench.layer_db", "mark")
        marks = dict(part.split("=") for part in marks_line.split())
        env = {PRELOADED_JOB_ID_ENV: marks["jobs"], PRELOADED_RESULT_ID_ENV: marks["results"]}
        assert counts(conn) == (PRELOADED_JOBS, 2)
        assert run(database_url, "-m", "bench.layer_db", "rows", marks=env) == "jobs=0 results=0"

        for round_number in (1, 2):  # ids keep rising: the second round is above the mark too
            add_rows(conn, jobs=3, results=2, prefix=f"round{round_number}-")
            add_outbox_message(conn, f"left-by-round{round_number}")
            assert run(database_url, "-m", "bench.layer_db", "rows", marks=env) == (
                "jobs=3 results=2"
            )
            run(database_url, "-m", "bench.layer_db", "reset", marks=env)
            assert counts(conn) == (PRELOADED_JOBS, 2)
            # The next worker would publish a message left in the outbox into the round.
            assert outbox_messages(conn) == 0
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
