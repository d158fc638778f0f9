"""The layer's database as the bench sees it, from a Django subprocess of its own.

Run by `bench.run` as `python -m bench.layer_db {rows,reset,watch} ...`:

- `rows` prints `jobs=<n> results=<n>` (the guard against wiping someone's data);
- `reset` empties the Job and TaskResult tables before a run;
- `watch --n N` prints `ready ...` once connected, then `progress ...` lines, then
  `done <monotonic>` once N jobs are SUCCESS and N results are stored as SUCCESS.

Why a subprocess rather than Django inside `bench.run`: the orchestrator then never
holds a database connection at all, across rounds, resets and worker restarts, and it
stays a plain process that only starts things and keeps time. The watcher keeps one
connection for the length of a drain, in autocommit, and each poll is a single short
SELECT: no transaction stays open between polls, so on SQLite (WAL) it takes no lock
and pins no snapshot that would hold back writers or checkpoints, and on PostgreSQL it
is one idle connection. Reconnecting on every poll instead would cost PostgreSQL a
backend start four times a second during the measurement.

TaskResult rows are counted with status SUCCESS, not merely counted: with
`CELERY_TASK_TRACK_STARTED` django-celery-results writes a STARTED row first, so "N rows
exist" would stop the clock before the results are stored.
"""

from __future__ import annotations

import argparse
import sys
import time

import django

POLL_INTERVAL_S = 0.25


def counts() -> tuple[int, int, int]:
    """(Job rows, Job rows SUCCESS, TaskResult rows SUCCESS)."""
    from django_celery_results.models import TaskResult

    from tasks.models import Job, JobStatus

    return (
        Job.objects.count(),
        Job.objects.filter(status=JobStatus.SUCCESS).count(),
        TaskResult.objects.filter(status=JobStatus.SUCCESS).count(),
    )


def rows() -> int:
    from django_celery_results.models import TaskResult

    from tasks.models import Job

    print(f"jobs={Job.objects.count()} results={TaskResult.objects.count()}", flush=True)
    return 0


def reset() -> int:
    """Empty both tables, so every round starts from the same state.

    Raw SQL because the ORM's delete() would first load every Job to apply the
    `retried_from` SET_NULL in Python; everything goes here, so there is nothing to
    null. PostgreSQL gets TRUNCATE, which also drops the dead tuples a DELETE would leave
    behind for the next round to wade through; SQLite's bare DELETE is its truncate.
    """
    from django.db import connection
    from django_celery_results.models import TaskResult

    from tasks.models import Job

    tables = [connection.ops.quote_name(m._meta.db_table) for m in (Job, TaskResult)]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)}")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")  # noqa: S608 (our own table names)
    return 0


def watch(n: int, timeout: float) -> int:
    jobs, success, results = counts()
    print(f"ready jobs={jobs} success={success} results={results}", flush=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, success, results = counts()
        now = time.monotonic()
        if success >= n and results >= n:
            # CLOCK_MONOTONIC is system-wide on Linux, so bench.run can subtract its own
            # start time from this stamp: no pipe or scheduling delay in the figure.
            print(f"done {now:.6f} success={success} results={results}", flush=True)
            return 0
        print(f"progress success={success} results={results}", flush=True)
        time.sleep(POLL_INTERVAL_S)
    print(f"timeout success={success} results={results}", flush=True)
    return 1


def lag() -> int:
    """Visibility lag: from a job's finish (stamped by the pool child) to the write of its
    row (`updated_at`, stamped by the recorder). A later write to the row (e.g. a
    RECEIVED arriving after SUCCESS) only makes the figure larger, never smaller."""
    from tasks.models import Job, JobStatus

    pairs = Job.objects.filter(status=JobStatus.SUCCESS, finished_at__isnull=False).values_list(
        "finished_at", "updated_at"
    )
    lags_ms = sorted((updated - finished).total_seconds() * 1000 for finished, updated in pairs)
    if not lags_ms:
        print("lag n=0", flush=True)
        return 1
    p50 = lags_ms[len(lags_ms) // 2]
    p95 = lags_ms[min(len(lags_ms) - 1, int(len(lags_ms) * 0.95))]
    print(f"lag n={len(lags_ms)} p50_ms={p50:.1f} p95_ms={p95:.1f}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("rows")
    commands.add_parser("reset")
    commands.add_parser("lag")
    watch_parser = commands.add_parser("watch")
    watch_parser.add_argument("--n", type=int, required=True)
    watch_parser.add_argument("--timeout", type=float, required=True)
    args = parser.parse_args(argv)
    django.setup()
    if args.command == "rows":
        return rows()
    if args.command == "reset":
        return reset()
    if args.command == "lag":
        return lag()
    return watch(args.n, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
