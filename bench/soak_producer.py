"""The soak's producer: `python -m bench.soak_producer --n N --seconds S --task-seconds T`.

Enqueues N soak jobs at an even pace over S seconds, every other one inside
`transaction.atomic()` (its row is written in the transaction and a worker's relay
publishes it), the others with a plain `.delay()`; each job whose `.delay()` returned is
listed in `--ids` (its task id, 1 when enqueued in a transaction). A call that raises (the database
connection was cut, the broker is down) is logged and tried again after a pause; the
count of calls that returned is printed last: `enqueued=<n> errors=<n>`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import django

RETRY_PAUSE_S = 0.5
GIVE_UP_AFTER_S = 120.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--task-seconds", type=float, required=True)
    parser.add_argument("--ids", type=Path, required=True, help="where to list the jobs")
    args = parser.parse_args(argv)
    django.setup()
    from django.db import connection, transaction

    from bench.soak_task import record_run

    enqueued = errors = 0
    in_transaction = 0
    started = time.monotonic()
    ids = args.ids.open("w")
    for i in range(args.n):
        due = started + args.seconds * i / args.n
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        trying_since = time.monotonic()
        while True:
            try:
                if i % 2:
                    with transaction.atomic():
                        handle = record_run.delay(i, args.task_seconds)
                    in_transaction += 1
                else:
                    handle = record_run.delay(i, args.task_seconds)
                enqueued += 1
                ids.write(f"{handle.id} {i % 2}\n")
                break
            except Exception as exc:
                errors += 1
                print(f"job {i}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                connection.close()  # a cut connection is reopened by the next query
                if time.monotonic() - trying_since > GIVE_UP_AFTER_S:
                    print(f"job {i}: gave up", file=sys.stderr, flush=True)
                    break
                time.sleep(RETRY_PAUSE_S)
        if i % 500 == 0:
            print(f"{i} jobs in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    ids.close()
    print(f"enqueued={enqueued} in_transaction={in_transaction} errors={errors}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
