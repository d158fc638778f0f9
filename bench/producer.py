"""The producer: one process that publishes N `noop` tasks in a loop, timing every call.

Run by `bench.run` as `python -m bench.producer {bare,layer} --n N --out FILE`. Each
side imports only what it measures: `bare` imports `bench.bare_app` and nothing of
Django; `layer` sets Django up and calls the project's `tasks.demo.noop.delay(i)`, so
the layer's figures include everything `.delay()` costs in a Django process (here, the
SENT event its publish signals buffer for the event stream). `layer` calls are made
outside any transaction: the plain publish path.

In a transaction (`bare-atomic`, `layer-atomic`) each call is what a view that creates
something and enqueues a job for it does: `transaction.atomic()`, one INSERT of an
application row (`bench_order`), the enqueue, COMMIT. Both sides pay the same
transaction; what differs is the enqueue: bare is plain Celery published on commit
(Celery's `delay_on_commit`: `transaction.on_commit(partial(task.delay, ...))`, with
Django's own backend and nothing of this project installed), layer is `.delay()`, which
writes the PENDING row in that transaction and leaves the publish to a worker's relay
(bench.run times that too). A transaction with no write of its own would measure nothing
a view does: the bare side would commit an empty transaction for free.

The first WARMUP calls open the broker (and database) connections, so they are timed
but left out of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.figures import percentile

WARMUP = 20


def bare_task() -> Any:
    from bench import bare_app

    if not os.environ.get(bare_app.BROKER_URL_ENV):
        raise SystemExit(f"{bare_app.BROKER_URL_ENV} is not set: bench.run sets it.")
    return bare_app.noop


def layer_task() -> Any:
    import django

    django.setup()
    from demo.tasks import noop
    from tasks.task import TrackedTask

    # `shared_task` binds to the current app: make sure that is the project's (its
    # broker, its TrackedTask base), not a default app that would measure something else.
    if noop.app.main != "project" or not isinstance(noop, TrackedTask):
        raise SystemExit(f"tasks.demo.noop is bound to {noop.app.main!r}, not the project app")
    return noop


def bare_django_task() -> Any:
    """Plain Celery in a Django process with nothing of this project installed."""
    import django

    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.bare_django_settings"
    django.setup()
    return bare_task()


APP_TABLE = "bench_order"


def create_app_table() -> None:
    """The application's own table that each benchmarked transaction writes a row to."""
    from django.db import connection

    key = "bigserial" if connection.vendor == "postgresql" else "integer"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {APP_TABLE} "
            f"(id {key} PRIMARY KEY, number integer NOT NULL, created_at varchar(40) NOT NULL)"
        )


def view_transaction(enqueue: Any) -> Any:
    """One call as a view makes it: a transaction, an application row, the enqueue."""
    from django.db import connection, transaction

    insert = f"INSERT INTO {APP_TABLE} (number, created_at) VALUES (%s, %s)"  # noqa: S608

    def call(i: int) -> None:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(insert, [i, str(time.time())])
            enqueue(i)

    return call


def publish(call: Any, n: int) -> dict[str, Any]:
    """Make n calls of `call(i)`; return the figures (the first WARMUP calls left out)."""
    latencies_ns: list[int] = []
    cpu_start = time.process_time()
    wall_start = time.perf_counter_ns()
    measured_from = wall_start
    for i in range(n):
        before = time.perf_counter_ns()
        call(i)
        after = time.perf_counter_ns()
        latencies_ns.append(after - before)
        if i == WARMUP - 1:
            measured_from = after
    wall_end = time.perf_counter_ns()
    measured = latencies_ns[WARMUP:]
    measured_us = [ns / 1000 for ns in measured]
    return {
        "n": n,
        "measured_calls": len(measured),
        "enqueue_per_s": len(measured) / ((wall_end - measured_from) / 1e9),
        "publish_p50_us": percentile(measured_us, 50),
        "publish_p99_us": percentile(measured_us, 99),
        "publish_mean_us": sum(measured_us) / len(measured_us),
        "warmup_total_us": sum(latencies_ns[:WARMUP]) / 1000,
        "wall_s": (wall_end - wall_start) / 1e9,
        "measured_wall_s": (wall_end - measured_from) / 1e9,
        "cpu_s": time.process_time() - cpu_start,
        # Every call's latency, so that the halves of an interleaved pair
        # (bench.figures.combine) give exact percentiles together.
        "latencies_us": measured_us,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=["bare", "layer", "bare-atomic", "layer-atomic"])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    args = parser.parse_args(argv)
    if args.n <= WARMUP:
        parser.error(f"--n must be more than the {WARMUP} warm-up calls")
    if args.side == "bare":
        call = bare_task().delay
    elif args.side == "layer":
        call = layer_task().delay
    else:
        from functools import partial

        from django.db import transaction

        if args.side == "bare-atomic":
            task = bare_django_task()

            def enqueue(i: int) -> None:
                transaction.on_commit(partial(task.delay, i))  # Celery's delay_on_commit
        else:
            enqueue = layer_task().delay
        create_app_table()
        call = view_transaction(enqueue)
    figures = publish(call, args.n)
    args.out.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
