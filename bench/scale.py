"""Scale check: millions of finished jobs on PostgreSQL, then the questions operators ask.

`python -m bench.scale [--rows 10000000]`:

1. creates a PostgreSQL database of its own on 127.0.0.1:5432 and migrates it;
2. loads `--rows` finished jobs spread over the last 30 days: COPY streams compact rows
   (numbers only) into an unlogged staging table, one INSERT ... SELECT turns them into
   `tasklayer_job` rows on the server, with the secondary indexes dropped during the load and
   built afterwards (the fast way to load a big table). Then what a deployment's recorder
   would have written beside them, computed from them on the server
   (bench.scale_observations): an attempt per job, the tallies per hour and minute, the
   failure groups and the workers' heartbeats; and a few hundred jobs still in flight
   (STARTED with a progress bar, SENT, RECEIVED) in the last hour;
3. times, REPEAT times each after a warm-up call, through the real Django stack: the
   admin job list (first page), the list filtered by status, a search by task id, two
   questions of dashboard.stats, every page and live fragment of /dashboard/
   (bench.dashboard_questions), and the /metrics scrape (its own target, 250 ms);
4. keeps the database (`--keep`) or drops it.

`bench.scale_ratios` (part of `make bench`) reuses `load` to measure enqueue and drain
against the full table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench import dashboard_questions, processes, scale_observations
from bench.figures import percentile

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
P95_TARGET_MS = 150.0
# The Prometheus scrape: every series of /metrics in one request (issue 22).
SCRAPE = "/metrics scrape (Prometheus, bearer token)"
SCRAPE_P95_TARGET_MS = 250.0
DAYS = 30
NAMES = [f"shop.tasks.job_{k:02d}" for k in range(20)]
# Samples per question: with 20 the "p95" was the slowest sample, one hiccup of a shared
# machine; with 100 it is the 95th (nearest rank), as a p95 should be.
REPEAT = 100

STAGING_COPY = "COPY bench_staging (i, created_ms, wait_ms, run_ms, kind) FROM STDIN"
# What became of a generated job (staging's `kind`): every task name fails 4 % of the
# time (3 % ValueError, 1 % TimeoutError) and is revoked 2 % of the time, spread evenly
# over the 30 days, so "failures of task X in a time range" finds rows for every X.
SUCCEEDED, FAILED_VALUE, REVOKED, FAILED_TIMEOUT = 0, 1, 2, 3
FAILED = (FAILED_VALUE, FAILED_TIMEOUT)
# Jobs not finished when the load ends, all created in its last hour: what the overview's
# cards and the Running page show (the tallies count only finished jobs).
RUNNING_ROWS = 300
QUEUED_ROWS = 300
WORKERS = 8
SCHEDULES = 10
FILL_SQL = """
INSERT INTO tasklayer_job (
    task_id, name, queue, priority, args, kwargs, status, progress, progress_message,
    result, error, traceback, attempts, worker, correlation_id, parent_id, root_id,
    group_id, group_index, eta, created_at, updated_at, sent_at, started_at, finished_at,
    dead_lettered_at, dead_letter_resolution, retried_from_id, fingerprint, recoveries,
    recovered_because)
SELECT
    id_text, name, (ARRAY['default', 'high', 'low'])[1 + i % 3], NULL,
    jsonb_build_array(i), '{}'::jsonb,
    CASE WHEN kind = 0 THEN 'SUCCESS' WHEN kind IN (1, 3) THEN 'FAILURE' ELSE 'REVOKED' END,
    100, '', CASE kind WHEN 0 THEN to_jsonb(i) END,
    CASE kind WHEN 1 THEN 'ValueError: bad input ' || i
              WHEN 3 THEN 'TimeoutError: upstream did not answer in 30 s' ELSE '' END,
    CASE WHEN kind IN (1, 3) THEN
        E'Traceback (most recent call last):\\n'
        || E'  File "/app/venv/lib/python3.11/site-packages/celery/app/trace.py", '
        || E'line 453, in trace_task\\n    R = retval = fun(*args, **kwargs)\\n'
        || '  File "/app/shop/tasks.py", line ' || (40 + i % 20) || ', in '
        || split_part(name, '.', 3) || E'\\n    raise ...\\n'
        || CASE kind WHEN 1 THEN 'ValueError: bad input ' || i
                     ELSE 'TimeoutError: upstream did not answer in 30 s' END
    ELSE '' END,
    1, 'worker-' || (i % %(workers)s) || '@host', id_text, '', id_text,
    CASE WHEN (i / %(batch_size)s) % %(batch_every)s = 0
         THEN 'bench-batch-' || (i / %(batch_size)s) ELSE '' END,
    CASE WHEN (i / %(batch_size)s) % %(batch_every)s = 0 THEN i % %(batch_size)s END,
    NULL, created, finished, created, started, finished,
    CASE WHEN kind IN (1, 3) AND i % 10 = 0 THEN finished END, '', NULL,
    -- The failure group (tasks.record.fingerprint: task name, exception class, frame):
    -- one per task name and exception class here.
    CASE WHEN kind IN (1, 3) THEN substr(md5(name || ':'
        || CASE kind WHEN 1 THEN 'ValueError' ELSE 'TimeoutError' END), 1, 16)
    ELSE '' END,
    0, ''
FROM (
    SELECT s.i, s.kind, lpad(to_hex(s.i), 32, '0') AS id_text,
           (%(names_array)s)[1 + s.i % %(names)s] AS name,
           to_timestamp(s.created_ms / 1000.0) AS created,
           to_timestamp((s.created_ms + s.wait_ms) / 1000.0) AS started,
           to_timestamp((s.created_ms + s.wait_ms + s.run_ms) / 1000.0) AS finished
    FROM bench_staging s
) AS src
"""
# Jobs in flight (ids after the finished ones): RUNNING_ROWS STARTED with a progress bar
# part-way, then QUEUED_ROWS SENT or RECEIVED, all created over the last hour.
UNFINISHED_SQL = """
INSERT INTO tasklayer_job (
    task_id, name, queue, priority, args, kwargs, status, progress, progress_message,
    result, error, traceback, attempts, worker, correlation_id, parent_id, root_id,
    group_id, group_index, eta, created_at, updated_at, sent_at, started_at, finished_at,
    dead_lettered_at, dead_letter_resolution, retried_from_id, fingerprint, recoveries,
    recovered_because)
SELECT
    id_text, (%(names_array)s)[1 + i % %(names)s], (ARRAY['default', 'high', 'low'])[1 + i % 3],
    NULL, jsonb_build_array(i), '{}'::jsonb, status,
    CASE status WHEN 'STARTED' THEN (k * 37) % 100 ELSE 0 END,
    CASE status WHEN 'STARTED' THEN 'step ' || (k * 37) % 100 || ' of 100' ELSE '' END,
    NULL, '', '', CASE status WHEN 'STARTED' THEN 1 ELSE 0 END,
    CASE status WHEN 'SENT' THEN '' ELSE 'worker-' || (i % %(workers)s) || '@host' END,
    id_text, '', id_text, '', NULL, NULL,
    created, created, created,
    CASE status WHEN 'STARTED' THEN created + interval '40 milliseconds' END, NULL,
    NULL, '', NULL, '', 0, ''
FROM (
    SELECT k, %(rows)s + k AS i, lpad(to_hex(%(rows)s + k), 32, '0') AS id_text,
           CASE WHEN k < %(running)s THEN 'STARTED'
                WHEN k % 2 = 0 THEN 'SENT' ELSE 'RECEIVED' END AS status,
           now() - make_interval(secs => 3600.0 * k / %(unfinished)s) AS created
    FROM generate_series(0, %(unfinished)s - 1) AS k
) AS src
"""


def kind_of(i: int) -> int:
    """What became of generated job i: independent of its task name (i % len(NAMES))."""
    slot = (i // len(NAMES)) % 100
    if slot < 94:
        return SUCCEEDED
    if slot < 97:
        return FAILED_VALUE
    if slot < 98:
        return FAILED_TIMEOUT
    return REVOKED


def staging_rows(rows: int, now_ms: int) -> Any:
    """Tab-separated text, a block at a time: i, created (ms), wait (ms), run (ms), kind.

    The wait (sent to started) and run (started to finished) times are spread over
    5-404 ms and 20-2019 ms, so the histograms and percentiles have something to read.
    """
    span_ms = DAYS * 24 * 3600 * 1000
    block = io.StringIO()
    for i in range(rows):
        created = now_ms - span_ms + (span_ms * i) // rows
        wait = 5 + (i * 131) % 400
        run = 20 + (i * 7919) % 2000
        block.write(f"{i}\t{created}\t{wait}\t{run}\t{kind_of(i)}\n")
        if i % 100_000 == 99_999:
            yield block.getvalue()
            block = io.StringIO()
    yield block.getvalue()


def load(url: str, rows: int) -> dict[str, float]:
    """Load `rows` finished jobs, the jobs in flight, and what the recorder writes beside
    them (bench.scale_observations); seconds per step."""
    import psycopg

    timings: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE tablename IN ('tasklayer_job', 'tasklayer_jobattempt') "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute(
            "CREATE UNLOGGED TABLE bench_staging "
            "(i bigint, created_ms bigint, wait_ms int, run_ms int, kind smallint)"
        )
        started = time.monotonic()
        now_ms = int(time.time() * 1000)
        with conn.cursor().copy(STAGING_COPY) as copy:
            for chunk in staging_rows(rows, now_ms):
                copy.write(chunk)
        timings["copy_s"] = time.monotonic() - started
        started = time.monotonic()
        conn.execute(fill_sql(FILL_SQL, rows))
        conn.execute("DROP TABLE bench_staging")
        conn.execute(fill_sql(UNFINISHED_SQL, rows))
        timings["insert_s"] = time.monotonic() - started
        started = time.monotonic()
        scale_observations.write_attempts(conn)
        timings["attempts_s"] = time.monotonic() - started
        started = time.monotonic()
        conn.execute("SET maintenance_work_mem = '1GB'")
        for _, definition in indexes:
            conn.execute(definition)
        timings["indexes_s"] = time.monotonic() - started
        started = time.monotonic()
        conn.execute("VACUUM ANALYZE tasklayer_job")
        conn.execute("VACUUM ANALYZE tasklayer_jobattempt")
        timings["analyze_s"] = time.monotonic() - started
        timings.update(scale_observations.write_observations(conn, WORKERS))
        # The load dirtied gigabytes of buffers; without this the checkpointer writes them
        # out over the next minutes, under whatever is measured next.
        started = time.monotonic()
        conn.execute("CHECKPOINT")
        timings["checkpoint_s"] = time.monotonic() - started
    return timings


def fill_sql(template: str, rows: int) -> str:
    """FILL_SQL or UNFINISHED_SQL with the generator's constants in place."""
    names_array = "ARRAY[" + ", ".join(f"'{n}'" for n in NAMES) + "]"
    values = {
        "names_array": names_array,
        "names": str(len(NAMES)),
        "workers": str(WORKERS),
        "rows": str(rows),
        "running": str(RUNNING_ROWS),
        "unfinished": str(RUNNING_ROWS + QUEUED_ROWS),
        "batch_size": str(dashboard_questions.BATCH_SIZE),
        "batch_every": str(dashboard_questions.BATCH_EVERY),
    }
    for key, value in values.items():
        template = template.replace(f"%({key})s", value)
    return template


def measure(rows: int) -> list[dict[str, Any]]:
    """Time each question REPEAT times through Django; p50/p95 in ms (or why not)."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client, override_settings
    from django.utils import timezone

    from dashboard import stats
    from tasks.models import Job

    # Every sample reads the database: with the live fragments' answers shared for 2 s
    # (dashboard/read/shared.py), 99 samples of 100 would time a dictionary lookup.
    override_settings(TASKS_DASHBOARD_SHARED_SECONDS=0).enable()

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    middle_id = dashboard_questions.task_id_of(rows // 2)
    assert Job.objects.filter(task_id=middle_id).exists(), "the generated rows are missing"
    seed_schedules()
    now = timezone.now()
    hour_ago = now - timezone.timedelta(hours=1)

    def page(url: str) -> Any:
        def fetch() -> None:
            response = client.get(url, secure=True)
            assert response.status_code == 200, (url, response.status_code)

        return fetch

    questions = {
        "admin job list, first page": page("/admin/tasklayer/job/"),
        "admin job list, status=FAILURE": page("/admin/tasklayer/job/?status__exact=FAILURE"),
        "admin search by task id": page(f"/admin/tasklayer/job/?q={middle_id}"),
        "jobs by status, last hour": lambda: stats.status_counts(hour_ago),
        "run time p50/p95 per task, last hour": lambda: stats.runtime_percentiles(hour_ago),
    }
    results = []
    for label, question in questions.items():
        question()  # warm the connection and caches, as a live server would be
        samples = []
        for _ in range(REPEAT):
            started = time.perf_counter()
            question()
            samples.append((time.perf_counter() - started) * 1000)
        results.append(verdict({"question": label, "samples": samples}))
    first_page = None
    for question in dashboard_questions.questions(now, rows, timezone.get_current_timezone()):
        found = dashboard_questions.timed(question, client, REPEAT, time.perf_counter)
        if question.label == dashboard_questions.EXPLORER_FIRST_PAGE:
            first_page = found
        results.append(verdict(found))
    # Page 2 through the cursor link of page 1, as an operator pages back in time.
    second = first_page and dashboard_questions.next_page(first_page.get("body", ""))
    if second:
        question = dashboard_questions.Question(dashboard_questions.PAGE_TWO, second)
        results.append(
            verdict(dashboard_questions.timed(question, client, REPEAT, time.perf_counter))
        )
    else:
        reason = first_page.get("failed") if first_page else None
        results.append(
            verdict(
                {
                    "question": dashboard_questions.PAGE_TWO,
                    "failed": f"page 1 {reason}" if reason else "page 1 has no next link",
                }
            )
        )
    results.append(scrape_verdict(REPEAT))
    return results


def seed_schedules() -> None:
    """Beat schedules of a generated task, so the schedules page reads its latest jobs
    among the loaded rows (beat's tables are otherwise empty in the bench's database)."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    every, _ = IntervalSchedule.objects.get_or_create(every=30, period=IntervalSchedule.SECONDS)
    nightly, _ = CrontabSchedule.objects.get_or_create(minute="0", hour="3")
    for n in range(SCHEDULES):
        PeriodicTask.objects.get_or_create(
            name=f"bench schedule {n}",
            defaults={
                "task": dashboard_questions.ONE_TASK,
                "args": json.dumps([n]),
                **({"interval": every} if n % 2 else {"crontab": nightly}),
            },
        )


def scrape_verdict(repeat: int) -> dict[str, Any]:
    """/metrics as Prometheus scrapes it (its bearer token, no session), against its
    own target (issue 22: p95 < 250 ms at 10M rows): every series read from the
    tallies, the job indexes, the heartbeats and the broker."""
    from django.test import Client, override_settings

    token = "bench-metrics-token"  # noqa: S105
    with override_settings(TASKS_METRICS_TOKEN=token):
        scraper = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
        question = dashboard_questions.Question(SCRAPE, "/metrics")
        found = dashboard_questions.timed(question, scraper, repeat, time.perf_counter)
    found.pop("body", None)
    return verdict(found, SCRAPE_P95_TARGET_MS)


def verdict(found: dict[str, Any], target_ms: float = P95_TARGET_MS) -> dict[str, Any]:
    """A question's line: p50/p95 of its samples against the target, or why it has none
    (a page not built yet, an error): FAIL then."""
    line = {"question": found["question"]}
    if "path" in found:
        line["path"] = found["path"]
    if target_ms != P95_TARGET_MS:
        line["target_ms"] = target_ms
    if "failed" in found:
        return {**line, "failed": found["failed"], "pass": False}
    samples = found["samples"]
    p95 = percentile(samples, 95)
    return {
        **line,
        "p50_ms": statistics.median(samples),
        "p95_ms": p95,
        "pass": p95 < target_ms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Admin and dashboard queries on a large job table."
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--measure-only",
        action="store_true",
        help="time the questions on the database of DATABASE_URL, already loaded with "
        "--rows jobs, and print the figures as JSON (what `make bench` runs)",
    )
    args = parser.parse_args(argv)
    if args.measure_only:
        print(json.dumps(measure(args.rows)))
        return 0

    import psycopg

    stamp = datetime.now(UTC).strftime("%Y%m%dt%H%M%S")
    name = f"bench_scale_{stamp}"
    url = f"postgres://postgres@127.0.0.1:5432/{name}"
    admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "SECRET_KEY": "bench-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz",
            "DEBUG": "0",
            "ALLOWED_HOSTS": "testserver",
        }
        os.environ.update(env)
        processes.run(
            ["manage.py", "migrate", "--no-input", "-v", "0"],
            env,
            processes.ROOT / "var" / "bench" / f"scale-{stamp}-migrate.log",
            timeout=600,
        )
        # Production settings serve hashed static files: the admin pages need the manifest.
        processes.run(
            ["manage.py", "collectstatic", "--no-input", "-v", "0"],
            env,
            processes.ROOT / "var" / "bench" / f"scale-{stamp}-collectstatic.log",
            timeout=600,
        )
        print(f"scale: loading {args.rows:,} finished jobs into {name} ...", flush=True)
        timings = load(url.replace("postgres://", "postgresql://"), args.rows)
        print(
            "scale: loaded in "
            + ", ".join(f"{k.removesuffix('_s')} {v:.0f} s" for k, v in timings.items()),
            flush=True,
        )
        results = measure(args.rows)
    finally:
        if not args.keep:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    print()
    print(f"| question ({args.rows:,} rows) | p50 ms | p95 ms | target p95 | |")
    print("|---|---:|---:|---:|---|")
    for r in results:
        passed = "PASS" if r["pass"] else "FAIL"
        target = r.get("target_ms", P95_TARGET_MS)
        if "failed" in r:
            print(f"| {r['question']} | {r['failed']} | | < {target:.0f} | {passed} |")
            continue
        print(
            f"| {r['question']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} "
            f"| < {target:.0f} | {passed} |"
        )
    if args.keep:
        print(f"\nkept: {url}")
    return 0 if all(r["pass"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
