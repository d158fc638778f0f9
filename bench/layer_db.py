"""The layer's database as the bench sees it, from a Django subprocess of its own.

Run by `bench.run` as `python -m bench.layer_db {rows,reset,watch,lag,due,mark} ...`:

- `rows` prints `jobs=<n> results=<n>` (the guard against wiping someone's data);
- `reset` empties the Job, TaskResult and OutboxMessage tables before a run;
- `watch --n N` prints `ready ...` once connected, then `progress ...` lines, then
  `done <monotonic>` once N jobs are SUCCESS and N results are stored as SUCCESS;
- `lag` prints the visibility lag of the finished jobs;
- `due` prints `due=<n>`: jobs committed in transactions and not yet relayed;
- `mark` prints `jobs=<max id> results=<max id>`: the preloaded rows' marks.

Preloaded rows (`bench.scale_ratios`): with PRELOADED_JOB_ID_ENV and
PRELOADED_RESULT_ID_ENV set to the marks `mark` printed after the load, every command
sees only the rows above them, the ones the rounds created. Ids come from the tables'
sequences, which never go back, so a row the bench's tasks wrote always has an id above
the mark; `reset` deletes along the primary key (`id > mark`, a range scan of the rows
one round wrote, however big the table), and `watch` and `lag` read the same range, so
a poll costs the same on 10 million rows as on none.

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
import os
import sys
import time
from typing import Any

import django

POLL_INTERVAL_S = 0.25
# The task the rounds run (bench.producer: demo.tasks.noop).
BENCH_TASK = "tasks.demo.noop"
# The highest Job and TaskResult ids of the preloaded rows, which the bench never touches.
PRELOADED_JOB_ID_ENV = "BENCH_PRELOADED_JOB_ID"
PRELOADED_RESULT_ID_ENV = "BENCH_PRELOADED_RESULT_ID"


def preloaded_marks() -> tuple[int, int] | None:
    """(Job id, TaskResult id) at or below which rows are preloaded; None: no preload."""
    job_mark = os.environ.get(PRELOADED_JOB_ID_ENV)
    result_mark = os.environ.get(PRELOADED_RESULT_ID_ENV)
    if job_mark is None and result_mark is None:
        return None
    if job_mark is None or result_mark is None:
        raise SystemExit(f"set both {PRELOADED_JOB_ID_ENV} and {PRELOADED_RESULT_ID_ENV}")
    return int(job_mark), int(result_mark)


def bench_rows() -> tuple[Any, Any]:
    """(Job rows, TaskResult rows) the bench's rounds wrote: all, or those above the marks."""
    from django_celery_results.models import TaskResult

    from tasks.models import Job

    jobs, results = Job.objects.all(), TaskResult.objects.all()
    marks = preloaded_marks()
    if marks is not None:
        jobs, results = jobs.filter(id__gt=marks[0]), results.filter(id__gt=marks[1])
    return jobs, results


def counts() -> tuple[int, int, int]:
    """(Job rows, Job rows SUCCESS, TaskResult rows SUCCESS)."""
    from tasks.models import JobStatus

    jobs, results = bench_rows()
    return (
        jobs.count(),
        jobs.filter(status=JobStatus.SUCCESS).count(),
        results.filter(status=JobStatus.SUCCESS).count(),
    )


def rows() -> int:
    jobs, results = bench_rows()
    print(f"jobs={jobs.count()} results={results.count()}", flush=True)
    return 0


def mark() -> int:
    """The highest ids now in both tables: after a preload, the marks to keep below."""
    from django.db.models import Max
    from django_celery_results.models import TaskResult

    from tasks.models import Job

    job_mark = Job.objects.aggregate(top=Max("id"))["top"] or 0
    result_mark = TaskResult.objects.aggregate(top=Max("id"))["top"] or 0
    print(f"jobs={job_mark} results={result_mark}", flush=True)
    return 0


def reset() -> int:
    """Empty the tables, so every round starts from the same state.

    The outbox too: a message left there (by a round that was stopped, say) is
    published by the next worker at its start and drained with the round's jobs, so
    that round would measure more work than it counts. And what the recorder writes
    beside the jobs (attempts, tallies, failure groups, heartbeats): a round's recorder
    should not write into a table that earlier rounds grew.

    Raw SQL because the ORM's delete() would first load every Job to apply the
    `retried_from` SET_NULL in Python; everything goes here, so there is nothing to
    null. PostgreSQL gets TRUNCATE, which also drops the dead tuples a DELETE would leave
    behind for the next round to wade through; SQLite's bare DELETE is its truncate.
    With preloaded rows, only the rows above the marks go (`reset_above`).
    """
    from django.db import connection
    from django_celery_results.models import TaskResult

    from tasks.models import (
        FailureGroup,
        FailureTally,
        Job,
        JobAttempt,
        JobTally,
        OutboxMessage,
        StatusTally,
        TimingTally,
        WorkerBeat,
    )

    marks = preloaded_marks()
    if marks is not None:
        return reset_above(*marks)
    models = (
        *(Job, TaskResult, OutboxMessage, JobAttempt),
        *(JobTally, StatusTally, TimingTally, FailureGroup, FailureTally, WorkerBeat),
    )
    tables = [connection.ops.quote_name(m._meta.db_table) for m in models]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)}")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")  # noqa: S608 (our own table names)
    return 0


def reset_above(job_mark: int, result_mark: int) -> int:
    """Delete the rows above the marks (the rounds' own), keep the preloaded ones, and
    every outbox message (none is preloaded). The rounds' attempts go with their jobs
    (by task id, through its index), their tallies by task name (BENCH_TASK: the
    preloaded tallies are of other names), and the per-status tallies, into whose rows
    (today, this hour) the rounds added, are summed again from the task rows left;
    `noop` never fails, so the failure groups and the heartbeats (one row per worker
    name, rewritten by each round) stay.

    `id > mark` is a range scan of the primary key over the few thousand rows a round
    wrote. A plain VACUUM then makes their space reusable and cuts the emptied pages off
    the table's end, so the next round writes into the table as the load left it; with
    so few dead rows PostgreSQL skips the passes over the indexes (PostgreSQL 14's
    bypass under 2% of the pages), so it reads only the pages the round touched.
    """
    from django.db import connection
    from django_celery_results.models import TaskResult

    from tasks.models import Job, JobAttempt, JobTally, OutboxMessage, StatusTally, TimingTally

    pairs = [(Job, job_mark), (TaskResult, result_mark)]
    beside = (JobAttempt, JobTally, StatusTally, TimingTally)
    quote = connection.ops.quote_name
    started = time.monotonic()
    deleted = []
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {quote(JobAttempt._meta.db_table)} WHERE task_id IN "  # noqa: S608
            f"(SELECT task_id FROM {quote(Job._meta.db_table)} WHERE id > %s)",
            [job_mark],
        )
        for model in (JobTally, TimingTally):
            table = quote(model._meta.db_table)
            cursor.execute(f"DELETE FROM {table} WHERE name = %s", [BENCH_TASK])  # noqa: S608
        statuses, tasks = quote(StatusTally._meta.db_table), quote(JobTally._meta.db_table)
        cursor.execute(f"DELETE FROM {statuses}")  # noqa: S608 (our own table names)
        cursor.execute(
            f"INSERT INTO {statuses} (period, start, status, count) "  # noqa: S608
            f"SELECT period, start, status, sum(count) FROM {tasks} GROUP BY 1, 2, 3"
        )
        for model, top in pairs:
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"DELETE FROM {table} WHERE id > %s", [top])  # noqa: S608
            deleted.append(cursor.rowcount)
        outbox = connection.ops.quote_name(OutboxMessage._meta.db_table)
        cursor.execute(f"DELETE FROM {outbox}")  # noqa: S608 (our own table name)
        deleted.append(cursor.rowcount)
        deleted_at = time.monotonic()
        if connection.vendor == "postgresql":
            # VACUUM cannot run in a transaction block; Django's connection is in
            # autocommit here.
            tables = ", ".join(quote(m._meta.db_table) for m in (*(m for m, _ in pairs), *beside))
            cursor.execute(f"VACUUM {tables}")
    # To the log (stderr): what a reset costs on a big table.
    print(
        f"reset above jobs={job_mark} results={result_mark}: deleted {deleted[0]} jobs, "
        f"{deleted[1]} results, {deleted[2]} outbox messages in {deleted_at - started:.2f} s, "
        f"vacuum {time.monotonic() - deleted_at:.2f} s",
        file=sys.stderr,
        flush=True,
    )
    return 0


def watch(n: int, timeout: float) -> int:
    """Poll until N jobs are SUCCESS and N results are stored as SUCCESS.

    While the jobs are not all done a poll is one COUNT (the finished jobs); the results
    are counted only from then on. The watcher shares the machine's two cores with the
    worker it times, and the bare side's poll is a single Redis GET: three COUNTs per
    poll, four polls a second, would take about 6 % of a core from the layer's drain on
    a 10M-row table.
    """
    from tasks.models import JobStatus

    jobs, success, results = counts()
    print(f"ready jobs={jobs} success={success} results={results}", flush=True)
    job_rows, result_rows = bench_rows()
    finished = job_rows.filter(status=JobStatus.SUCCESS)
    stored = result_rows.filter(status=JobStatus.SUCCESS)
    deadline = time.monotonic() + timeout
    results_seen = "not counted yet"
    while time.monotonic() < deadline:
        success = finished.count()
        if success >= n:
            results = stored.count()
            results_seen = str(results)
            if results >= n:
                # CLOCK_MONOTONIC is system-wide on Linux, so bench.run can subtract its
                # own start time from this stamp: no pipe or scheduling delay in the figure.
                now = time.monotonic()
                print(f"done {now:.6f} success={success} results={results}", flush=True)
                return 0
        print(f"progress success={success} results={results_seen}", flush=True)
        time.sleep(POLL_INTERVAL_S)
    print(f"timeout success={success} results={results_seen}", flush=True)
    return 1


def due() -> int:
    jobs, _ = bench_rows()
    print(f"due={jobs.filter(publish_due_at__isnull=False).count()}", flush=True)
    return 0


def lag() -> int:
    """Visibility lag: from a job's finish (stamped by the pool child) to the write of its
    row (`updated_at`, stamped by the recorder). A later write to the row (e.g. a
    RECEIVED arriving after SUCCESS) only makes the figure larger, never smaller."""
    from tasks.models import JobStatus

    jobs, _ = bench_rows()
    pairs = jobs.filter(status=JobStatus.SUCCESS, finished_at__isnull=False).values_list(
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
    commands.add_parser("due")
    commands.add_parser("mark")
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
    if args.command == "due":
        return due()
    if args.command == "mark":
        return mark()
    return watch(args.n, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
