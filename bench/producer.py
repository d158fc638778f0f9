"""The producer: one process that publishes N `noop` tasks in a loop, timing every call.

Run by `bench.run` as `python -m bench.producer {bare,layer} --n N --out FILE`. Each
side imports only what it measures: `bare` imports `bench.bare_app` and nothing of
Django; `layer` sets Django up and calls the project's `tasks.demo.noop.delay(i)`, so
the layer's figures include everything `.delay()` costs in a Django process (here, the
Job row written by the publish signals). Calls are made outside any transaction: the
plain publish path, not the on-commit outbox.

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
    from tasks.base import TrackedTask
    from tasks.demo import noop

    # `shared_task` binds to the current app: make sure that is the project's (its
    # broker, its TrackedTask base), not a default app that would measure something else.
    if noop.app.main != "project" or not isinstance(noop, TrackedTask):
        raise SystemExit(f"tasks.demo.noop is bound to {noop.app.main!r}, not the project app")
    return noop


def publish(task: Any, n: int, atomic: bool = False) -> dict[str, Any]:
    """Publish n tasks; return the figures (the first WARMUP calls left out).

    `atomic`: each call in a transaction of its own, as a view enqueueing one job
    does (the PENDING row is written in it, the publish happens on commit).
    """
    from contextlib import nullcontext

    transaction: Any = None
    if atomic:
        from django.db import transaction
    latencies_ns: list[int] = []
    cpu_start = time.process_time()
    wall_start = time.perf_counter_ns()
    measured_from = wall_start
    for i in range(n):
        before = time.perf_counter_ns()
        with transaction.atomic() if atomic else nullcontext():
            task.delay(i)
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
        "cpu_s": time.process_time() - cpu_start,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=["bare", "layer", "layer-atomic"])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    args = parser.parse_args(argv)
    if args.n <= WARMUP:
        parser.error(f"--n must be more than the {WARMUP} warm-up calls")
    task = bare_task() if args.side == "bare" else layer_task()
    figures = publish(task, args.n, atomic=args.side == "layer-atomic")
    args.out.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
