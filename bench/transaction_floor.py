"""What the durable rows of `.delay()` in a transaction cost at the driver, and the ceiling
that puts on the in-transaction enqueue ratio.

Issue 5 requires the PENDING job row (and here its outbox message) to be written in the
caller's transaction. Whatever the layer's Python costs, those rows cost at least what
the database driver takes to insert them and commit the larger transaction. This
measures exactly that, with no code of the layer on the path: the view-shaped
transaction of `bench.producer` (one application row, COMMIT) against the same
transaction plus one job row and one outbox row, by plain parameterised INSERTs on the
driver's own connection (the layer's tables, indexes and SQLite pragmas; on PostgreSQL
pipelined with the COMMIT, as the layer sends them), interleaved in blocks. `bench.run`
turns the difference into a ceiling: bare's in-transaction call time over that time
plus the difference.

The rows are committed, as a view's are, and deleted when the measurement ends: an
outbox message left behind is due at once, so the next worker to start would publish it
as a real `noop` job and drain it with a later round's jobs (until 2026-12-02 that made
every round on the preloaded table drain more jobs than it counted).

Run by `bench.run` as `python -m bench.transaction_floor --n N` with the layer's
environment; prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bench.figures import median

BLOCKS = 6  # interleaved blocks per variant
TASK_ID_PREFIX = "bench-floor-"  # the rows this module writes, and deletes at the end


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="transactions per block")
    args = parser.parse_args(argv)

    import django

    django.setup()
    from django.db import connection

    from bench.producer import APP_TABLE, create_app_table
    from tasks.models import Job, OutboxMessage

    create_app_table()
    connection.ensure_connection()
    driver = connection.connection
    sqlite = connection.vendor == "sqlite"
    mark = "?" if sqlite else "%s"
    inserts = [_insert(model, mark, sqlite) for model in (Job, OutboxMessage)]
    app_sql = f"INSERT INTO {APP_TABLE} (number, created_at) VALUES ({mark}, {mark})"  # noqa: S608
    begin = "BEGIN IMMEDIATE" if sqlite else "BEGIN"
    if sqlite:
        driver.isolation_level = None  # explicit BEGIN/COMMIT, as Django's atomic does
    else:
        driver.autocommit = True

    def block(with_rows: bool) -> float:
        started = time.perf_counter()
        for i in range(args.n):
            task_id = f"{TASK_ID_PREFIX}{uuid.uuid4()}"
            driver.execute(begin)
            driver.execute(app_sql, (i, str(time.time())))
            if not with_rows:
                driver.execute("COMMIT")
                continue
            # On PostgreSQL sent with the COMMIT in one round trip, as the layer does.
            with contextlib.nullcontext() if sqlite else driver.pipeline():
                for sql, values in inserts:
                    driver.execute(sql, values(task_id))
                driver.execute("COMMIT")
        return (time.perf_counter() - started) / args.n * 1e6

    plain: list[float] = []
    with_rows: list[float] = []
    try:
        block(True)  # warm-up: caches, the tables' first pages
        for _ in range(BLOCKS):
            plain.append(block(False))
            with_rows.append(block(True))
    finally:
        # Counted by the DELETEs: what the floor really wrote (tests check it).
        written = {
            model._meta.db_table: model.objects.filter(task_id__startswith=TASK_ID_PREFIX)
            .delete()[1]
            .get(model._meta.label, 0)
            for model in (OutboxMessage, Job)
        }
    figures = {
        "vendor": connection.vendor,
        "transaction_us": median(plain),
        "transaction_with_rows_us": median(with_rows),
        "rows_written": written,
    }
    figures["rows_cost_us"] = figures["transaction_with_rows_us"] - figures["transaction_us"]
    print(json.dumps(figures))
    return 0


def _insert(model: Any, mark: str, sqlite: bool) -> tuple[str, Any]:
    """A plain INSERT of a PENDING-shaped row of `model`, and its values for a task id."""
    fields = [field for field in model._meta.concrete_fields if field.name != "id"]
    columns = ", ".join(f'"{field.column}"' for field in fields)
    marks = ", ".join(mark for _ in fields)
    # Identifiers from model metadata; values are bound parameters.
    sql = f'INSERT INTO "{model._meta.db_table}" ({columns}) VALUES ({marks})'  # noqa: S608
    now = datetime.now(UTC)
    stamp = str(now.replace(tzinfo=None)) if sqlite else now
    typical = {
        "name": "tasks.demo.noop",
        "queue": "default",
        "status": "PENDING",
        "args": "[1]",
        "kwargs": "{}",
        "options": '{"queue": "default", "headers": {}, "ignore_result": false}',
    }

    def value(field: Any, task_id: str) -> Any:
        if field.column in ("task_id", "correlation_id"):
            return task_id
        if field.column in typical:
            return typical[field.column]
        kind = field.get_internal_type()
        if kind == "DateTimeField":
            return stamp if not field.null or field.column in ("updated_at", "claimed_at") else None
        if field.has_default():
            default = field.get_default()
            return json.dumps(default) if kind == "JSONField" else default
        return None

    return sql, lambda task_id: [value(field, task_id) for field in fields]


if __name__ == "__main__":
    sys.exit(main())
