"""Scale check: millions of finished jobs on PostgreSQL, then the questions operators ask.

`python -m bench.scale [--rows 10000000]`:

1. creates a PostgreSQL database of its own on 127.0.0.1:5432 and migrates it;
2. loads `--rows` finished jobs spread over the last 30 days: COPY streams compact rows
   (numbers only) into an unlogged staging table, one INSERT ... SELECT turns them into
   `tasklayer_job` rows on the server, with the secondary indexes dropped during the load and
   built afterwards (the fast way to load a big table);
3. times, REPEAT times each after a warm-up call, through the real Django stack: the
   admin job list (first page), the list filtered by status, a search by task id, and
   the dashboard's two questions (jobs by status in the last hour; per-task run time
   p50/p95 over the last hour);
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

from bench import processes
from bench.figures import percentile

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
P95_TARGET_MS = 150.0
DAYS = 30
NAMES = [f"shop.tasks.job_{k:02d}" for k in range(20)]
# Samples per question: with 20 the "p95" was the slowest sample, one hiccup of a shared
# machine; with 100 it is the 95th (nearest rank), as a p95 should be.
REPEAT = 100

STAGING_COPY = "COPY bench_staging (i, created_ms, run_ms, kind) FROM STDIN"
FILL_SQL = """
INSERT INTO tasklayer_job (
    task_id, name, queue, priority, args, kwargs, status, progress, progress_message,
    result, error, traceback, attempts, worker, correlation_id, parent_id, root_id,
    group_id, eta, created_at, updated_at, sent_at, started_at, finished_at,
    dead_lettered_at, dead_letter_resolution, retried_from_id)
SELECT
    id_text, names[1 + i % %(names)s], (ARRAY['default', 'high', 'low'])[1 + i % 3], NULL,
    jsonb_build_array(i), '{}'::jsonb,
    CASE kind WHEN 0 THEN 'SUCCESS' WHEN 1 THEN 'FAILURE' ELSE 'REVOKED' END,
    100, '', CASE kind WHEN 0 THEN to_jsonb(i) END,
    CASE kind WHEN 1 THEN 'ValueError: bad input ' || i ELSE '' END, '',
    1, 'worker-' || (i % 8) || '@host', id_text, '', id_text, '', NULL,
    created, created + run, created, created + interval '20 milliseconds',
    created + run, CASE WHEN kind = 1 AND i % 10 = 0 THEN created + run END, '', NULL
FROM (
    SELECT s.i, s.kind, lpad(to_hex(s.i), 32, '0') AS id_text,
           to_timestamp(s.created_ms / 1000.0) AS created,
           make_interval(secs => s.run_ms / 1000.0) AS run,
           %(names_array)s AS names
    FROM bench_staging s
) AS src
"""


def staging_rows(rows: int, now_ms: int) -> Any:
    """Tab-separated text, a block at a time: i, created (ms), run time (ms), kind."""
    span_ms = DAYS * 24 * 3600 * 1000
    block = io.StringIO()
    for i in range(rows):
        kind = 0 if i % 100 < 94 else (1 if i % 100 < 98 else 2)
        created = now_ms - span_ms + (span_ms * i) // rows
        block.write(f"{i}\t{created}\t{20 + (i * 7919) % 2000}\t{kind}\n")
        if i % 100_000 == 99_999:
            yield block.getvalue()
            block = io.StringIO()
    yield block.getvalue()


def load(url: str, rows: int) -> dict[str, float]:
    import psycopg

    timings: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasklayer_job' "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute(
            "CREATE UNLOGGED TABLE bench_staging "
            "(i bigint, created_ms bigint, run_ms int, kind smallint)"
        )
        started = time.monotonic()
        now_ms = int(time.time() * 1000)
        with conn.cursor().copy(STAGING_COPY) as copy:
            for chunk in staging_rows(rows, now_ms):
                copy.write(chunk)
        timings["copy_s"] = time.monotonic() - started
        started = time.monotonic()
        names_array = "ARRAY[" + ", ".join(f"'{n}'" for n in NAMES) + "]"
        conn.execute(
            FILL_SQL.replace("%(names)s", str(len(NAMES))).replace("%(names_array)s", names_array)
        )
        conn.execute("DROP TABLE bench_staging")
        timings["insert_s"] = time.monotonic() - started
        started = time.monotonic()
        conn.execute("SET maintenance_work_mem = '1GB'")
        for _, definition in indexes:
            conn.execute(definition)
        timings["indexes_s"] = time.monotonic() - started
        started = time.monotonic()
        conn.execute("VACUUM ANALYZE tasklayer_job")
        timings["analyze_s"] = time.monotonic() - started
        # The load dirtied gigabytes of buffers; without this the checkpointer writes them
        # out over the next minutes, under whatever is measured next.
        started = time.monotonic()
        conn.execute("CHECKPOINT")
        timings["checkpoint_s"] = time.monotonic() - started
    return timings


def measure(rows: int) -> list[dict[str, Any]]:
    """Time each question REPEAT times through Django; p50/p95 in ms."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from dashboard import stats
    from tasks.models import Job

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    middle_id = format(rows // 2, "032x")
    assert Job.objects.filter(task_id=middle_id).exists(), "the generated rows are missing"
    hour_ago = timezone.now() - timezone.timedelta(hours=1)

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
        p95 = percentile(samples, 95)
        results.append(
            {
                "question": label,
                "p50_ms": statistics.median(samples),
                "p95_ms": p95,
                "pass": p95 < P95_TARGET_MS,
            }
        )
    return results


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
        verdict = "PASS" if r["pass"] else "FAIL"
        print(
            f"| {r['question']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} "
            f"| < {P95_TARGET_MS:.0f} | {verdict} |"
        )
    if args.keep:
        print(f"\nkept: {url}")
    return 0 if all(r["pass"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
